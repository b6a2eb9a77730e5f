"""The operators' CLI under its first name: `python -m shared_code.notify_cli` runs `shared_code.app.cli`."""

from __future__ import annotations

import sys

from shared_code.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
