"""Where Debian's Chromium is, how it is started, and whether the browser tests can run here: devhost's, which the
bench's page-load figure shares (kept light: the suite's summary asks it)."""

from __future__ import annotations

from devhost.chromium import CHROMIUM, CHROMIUM_ARGS, chromium_missing

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "chromium_missing"]
