"""The OpenTelemetry SDK in memory, for the tests that read spans and metrics (the `telemetry` fixture).

A process can set the global tracer and meter providers once: the first test that asks for `telemetry` sets
them, with an in-memory span exporter and metric reader, and later ones in the same xdist worker reuse them.
Between those tests the sampler drops every span (a span that is not recorded costs almost nothing), so the
tests that do not ask keep running as they would, and the exporter holds only what the asking test made.
Metrics are read as deltas: `Telemetry.metrics()` is what was recorded since the previous read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# Registered for the whole suite (tests/conftest.py), imported by every worker: the SDK, and so the API, is
# imported only when a test asks for `telemetry` (until then the app's telemetry is off, as in production
# without an SDK).


@dataclass
class Telemetry:
    spans_exporter: Any  # InMemorySpanExporter
    reader: Any  # InMemoryMetricReader
    switch: Any  # the sampler: records only while a telemetry test runs

    def spans(self, notification_id: str | None = None) -> list[Any]:
        found = list(self.spans_exporter.get_finished_spans())
        if notification_id is None:
            return found
        return [s for s in found if (s.attributes or {}).get("notification.id") == notification_id]

    def metrics(self) -> dict[str, list[Any]]:
        """{metric name: its data points} recorded since the previous call."""
        data = self.reader.get_metrics_data()
        points: dict[str, list[Any]] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
        return points


_installed: Telemetry | None = None


def _install() -> Telemetry:
    global _installed
    if _installed is None:
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, Sampler, SamplingResult

        class Switch(Sampler):
            on = False

            def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
                return ALWAYS_ON.should_sample(*args, **kwargs) if self.on else SamplingResult(Decision.DROP)

            def get_description(self) -> str:
                return "on while a telemetry test runs"

        switch, exporter = Switch(), InMemorySpanExporter()
        provider = TracerProvider(sampler=switch)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        reader = InMemoryMetricReader(preferred_temporality={
            kind: AggregationTemporality.DELTA for kind in _instrument_kinds()})
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        _installed = Telemetry(exporter, reader, switch)
    return _installed


def _instrument_kinds() -> list[type]:
    from opentelemetry.sdk.metrics import (
        Counter,
        Histogram,
        ObservableCounter,
        ObservableGauge,
        ObservableUpDownCounter,
        UpDownCounter,
        _Gauge,
    )

    return [Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter, ObservableGauge, _Gauge]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """Spans and metrics of this test, in memory (see the module's note)."""
    installed = _install()
    installed.spans_exporter.clear()
    installed.metrics()  # what earlier tests left: not this test's
    installed.switch.on = True
    try:
        yield installed
    finally:
        installed.switch.on = False
        installed.spans_exporter.clear()
