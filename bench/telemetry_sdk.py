"""Telemetry on, for the benchmarks: the OpenTelemetry SDK as a host configures it, with batching exporters
that serialize every span and data point (to /dev/null) as an exporter must, so their CPU is counted."""

from __future__ import annotations

import os


def configure(metric_interval_ms: float = 5000) -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sink)))
    trace.set_tracer_provider(provider)
    reader = PeriodicExportingMetricReader(ConsoleMetricExporter(out=sink), export_interval_millis=metric_interval_ms)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))


def flush() -> None:
    from opentelemetry import metrics, trace

    trace.get_tracer_provider().force_flush()
    metrics.get_meter_provider().force_flush()
