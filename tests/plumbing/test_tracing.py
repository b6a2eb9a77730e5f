"""plumbing.tracing without an SDK: traceparents checked as W3C says, attributes filtered, the API never imported."""

from __future__ import annotations

import os
import subprocess
import sys
from enum import Enum
from pathlib import Path

import pytest

from shared_code.plumbing.telemetry import safe_attributes
from shared_code.plumbing.tracing import parse_traceparent

ROOT = Path(__file__).resolve().parents[2]
VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize(("value", "kept"), [
    (VALID, True),
    ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", True),  # not sampled: still its trace
    ("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future", True),  # a later version may add fields
    (None, False),
    (42, False),
    ("", False),
    ("garbage", False),
    (VALID.upper(), False),
    (VALID + "-more", False),
    ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", False),
    ("00-00000000000000000000000000000000-b7ad6b7169203331-01", False),
    ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", False),
    ("00-" + "a" * 1000, False),
])
def test_traceparent_is_kept_only_when_w3c_would_accept_it(value, kept):
    assert parse_traceparent(value) == (value if kept else None)


class Kind(Enum):
    PAGE = "page"


def test_attributes_lose_secrets_and_ids_of_people_and_keep_the_rest():
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl"

    assert safe_attributes({
        "notification.id": "release-42", "notification.page": "000003", "notification.sent": 100, "ok": True,
        "kind": Kind.PAGE, "notification.tenant": ("tenant:72f988bf-86f1-41af-91ab-2d7cd011db47",),
        "client_secret": "hunter2", "detail": f"Bearer {token}", "to": "29:1f2e3d4c5b6a79880a1b2c3d", "none": None,
    }) == {
        "notification.id": "release-42", "notification.page": "000003", "notification.sent": 100, "ok": True,
        "kind": "page", "notification.tenant": ("tenant:72f988bf-86f1-41af-91ab-2d7cd011db47",),
        "client_secret": "[redacted]", "detail": "Bearer [redacted]", "to": "[user id]",
    }


def test_telemetry_off_imports_no_opentelemetry_and_every_call_is_a_no_op():
    script = (
        "import sys\n"
        "import MessagesFunction, NotifyFunction, NotifyQueueFunction\n"
        "from shared_code.notifications import queue_runner\n"
        "from shared_code.plumbing import tracing\n"
        "with tracing.job_span('notifications.page', '" + VALID + "', {}) as span: span.set({'a': 1})\n"
        "tracing.add(tracing.MESSAGES, 1, {}); tracing.record(tracing.SEND_DURATION, 0.1, {})\n"
        "assert tracing.with_traceparent({'v': 1}) == {'v': 1} and not tracing.active()\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})

    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr
