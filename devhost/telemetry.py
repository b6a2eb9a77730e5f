"""The dev host's OpenTelemetry SDK: what the Python worker's Azure Monitor distro is in Azure, for `make run`.

Off unless asked, as in Azure without PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY. The standard settings ask:

    OTEL_TRACES_EXPORTER=console         one line per span on stderr (name, duration, trace, attributes)
    OTEL_METRICS_EXPORTER=console        the app's metrics every OTEL_METRIC_EXPORT_INTERVAL ms (default 10,000)
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318
                                         spans and metrics to a local collector (Jaeger, Aspire dashboard…), over
                                         OTLP/HTTP; needs `pip install opentelemetry-exporter-otlp-proto-http`

`otlp` as either exporter's value means the same endpoint (4318 on localhost by default).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

SERVICE_NAME = "proactive-bot (dev host)"
DEFAULT_METRIC_INTERVAL_MS = 10_000


def wanted(environ: Mapping[str, str]) -> tuple[set[str], set[str]]:
    """The exporters asked for: ({console, otlp} for spans, the same for metrics)."""
    def parse(name: str) -> set[str]:
        values = {v.strip().lower() for v in environ.get(name, "").split(",") if v.strip()} - {"none"}
        if environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") and not environ.get(name):
            values.add("otlp")
        return values & {"console", "otlp"}

    return parse("OTEL_TRACES_EXPORTER"), parse("OTEL_METRICS_EXPORTER")


def span_line(span: Any) -> str:
    """One span as one line: name, seconds, trace id (short), its parent, attributes."""
    seconds = ((span.end_time or 0) - (span.start_time or 0)) / 1e9
    parent = f" parent={span.parent.span_id:016x}"[:15] if span.parent else ""
    attributes = " ".join(f"{k}={v}" for k, v in (span.attributes or {}).items())
    status = f" status={span.status.status_code.name}" if span.status.status_code.name == "ERROR" else ""
    return (f"[span] {span.name} {seconds:.3f}s trace={span.context.trace_id:032x} "
            f"span={span.context.span_id:016x}{parent}{status} {attributes}\n")


def metrics_lines(data: Any) -> str:
    """The app's metrics, one line per data point."""
    lines = []
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:  # a histogram
                        value = f"count={point.count} sum={point.sum:.3f} max={point.max:.3f}" if point.count else "count=0"
                    attributes = " ".join(f"{k}={v}" for k, v in (point.attributes or {}).items())
                    lines.append(f"[metric] {metric.name} {value} {metric.unit} {attributes}\n")
    return "".join(lines)


def configure(environ: Mapping[str, str] | None = None, *, out: TextIO | None = None) -> list[str]:
    """Set the global tracer and meter providers as the settings ask; what was set up (empty: off)."""
    environ = os.environ if environ is None else environ
    spans, metrics_wanted = wanted(environ)
    if not spans and not metrics_wanted:
        return []
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    out = out or sys.stderr
    resource = Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME})
    done: list[str] = []
    if spans:
        provider = TracerProvider(resource=resource)
        if "console" in spans:
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=out, formatter=span_line)))
            done.append("spans: console")
        if "otlp" in spans:
            provider.add_span_processor(BatchSpanProcessor(_otlp("trace")()))
            done.append("spans: otlp")
        trace.set_tracer_provider(provider)
    if metrics_wanted:
        interval = float(environ.get("OTEL_METRIC_EXPORT_INTERVAL") or DEFAULT_METRIC_INTERVAL_MS)
        readers = []
        if "console" in metrics_wanted:
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(out=out, formatter=metrics_lines),
                                                         export_interval_millis=interval))
            done.append("metrics: console")
        if "otlp" in metrics_wanted:
            readers.append(PeriodicExportingMetricReader(_otlp("metric")(), export_interval_millis=interval))
            done.append("metrics: otlp")
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    return done


def _otlp(kind: str) -> Any:
    """The OTLP/HTTP exporter class (it reads OTEL_EXPORTER_OTLP_ENDPOINT itself)."""
    try:
        if kind == "trace":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            return OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        return OTLPMetricExporter
    except ImportError:
        raise SystemExit("OTLP asked for (OTEL_EXPORTER_OTLP_ENDPOINT or otlp): install its exporter first, "
                         ".venv/bin/pip install opentelemetry-exporter-otlp-proto-http==1.45.2") from None
