"""The dev host's OpenTelemetry: off unless the standard OTEL_* settings ask, and then spans a developer can read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devhost.telemetry import wanted

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, (set(), set())),
    ({"OTEL_TRACES_EXPORTER": "none"}, (set(), set())),
    ({"OTEL_TRACES_EXPORTER": "console"}, ({"console"}, set())),
    ({"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console"}, ({"console"}, {"console"})),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318"}, ({"otlp"}, {"otlp"})),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318", "OTEL_METRICS_EXPORTER": "none"}, ({"otlp"}, set())),
])
def test_dev_host_telemetry_is_what_the_otel_settings_ask(environ, expected):
    assert wanted(environ) == expected


def test_dev_host_prints_a_span_as_one_line_with_its_attributes_filtered():
    script = (
        "from devhost import telemetry; import sys\n"
        "print(telemetry.configure({'OTEL_TRACES_EXPORTER': 'console'}, out=sys.stdout))\n"
        "from shared_code.plumbing import tracing\n"
        "with tracing.span(tracing.NOTIFY, {tracing.NOTIFICATION_ID: 'n-1', 'to': '29:abcdefghijkl'}): pass\n"
        "from opentelemetry import trace; trace.get_tracer_provider().force_flush()\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})

    assert done.returncode == 0, done.stderr
    first, span = done.stdout.splitlines()[:2]
    assert first == "['spans: console']"
    assert span.startswith("[span] notifications.notify ") and "notification.id=n-1 to=[user id]" in span
