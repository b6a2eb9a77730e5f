"""Tracing and metrics: one OpenTelemetry trace per notification, carried from queue job to queue job.

The app calls only this module, and this module only the OpenTelemetry **API**. Whoever runs the app
configures an SDK, or none: the Functions Python worker (the Azure Monitor distro, when
PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true and azure-monitor-opentelemetry is installed), the dev
host (OTEL_TRACES_EXPORTER=console, or an OTLP endpoint: devhost/telemetry.py), a test. Whoever configures
one imports the API first; so while nothing has imported `opentelemetry.trace`, telemetry is off and every
call here returns at once, without importing it (a dict lookup: nothing at cold start, nothing per send).

**The trace.** `POST /api/notify` opens a span; the W3C `traceparent` of the current span goes into every
queue job the app puts on the queue (`jobs.enqueue`), and into the notification's record (for the timers:
the sweep's and the scheduler's re-issues, and edits and recalls asked for later, continue from it).
A job's span (`job_span`) is the child of the `traceparent` it carries, however many hops and hours later,
and is linked to the invocation's own span (the host's); a job without one, or with a malformed one
(ignored, never an error), starts a new trace. So scan → page → send, retries and re-issues included, are
one trace in Application Insights.

**Sends.** A 100,000-message broadcast is 100,000 sends: a span each would cost about as much CPU as the
send's own bookkeeping, and Application Insights would bill every one. The page's span carries its counts;
every send is in the metrics (its latency, its outcome by code); a send gets a span of its own, recorded
after it ended (`record_span`), when it did not go out (failed, retried, throttled, skipped) and for one
sent message in `SENT_SPAN_EVERY` of each page job (the first included), which samples the latency.

**Attributes** never hold a user or conversation id, a token or message text: they go through the log
line's credential filter (`telemetry.safe_attributes`) and exceptions are recorded by type only.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from shared_code.plumbing.telemetry import safe_attributes

TRACEPARENT = "traceparent"  # the W3C header's name, and the queue job's field
INSTRUMENTATION = "proactive-bot.notifications"
SENT_SPAN_EVERY = 100  # of a page job's sent messages, one span for the first and every hundredth after it
_API = "opentelemetry.trace"
_TRACEPARENT_SHAPE = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?")

# --- the names the app emits (infra/workbook.json queries them; tests/plumbing/test_tracing_names.py checks) ---

NOTIFY = "notifications.notify"  # POST /api/notify for many: creates the notification
JOB = "notifications.{kind}"  # a queue job: notifications.scan, .page, .watch, .editPage, .recallPage, .message…
SEND = "notifications.send"  # one recipient of a page (see "Sends" above)
EDIT = "notifications.edit"  # an edit asked for (HTTP or queue): queues the page updates
RECALL = "notifications.recall"
RESUME = "notifications.resume"  # the sweep re-issuing a stalled notification's scan or pages
DUE = "notifications.due"  # the scheduler queueing a parked notification's first scan

# Attributes (custom ones under `notification.`, semantic conventions' where one fits).
NOTIFICATION_ID = "notification.id"
PAGE = "notification.page"
TENANT = "notification.tenant"
RECIPIENTS = "notification.recipients"
ATTEMPT = "notification.attempt"
OUTCOME = "notification.outcome"
CODE = "notification.code"
JOB_KIND = "notification.job.kind"
SOURCE = "notification.throttle.source"
BUDGET = "notification.budget"
ERROR_TYPE = "error.type"

# Metrics: (name, kind, unit, description). Semantic conventions' name where one exists (messaging.*).
MESSAGES = "notifications.messages"
THROTTLED = "notifications.throttled"
BUDGET_RATE = "notifications.budget.rate"
SEND_DURATION = "notifications.send.duration"
CLAIM_WINDOW = "notifications.claim_window.occupancy"
JOB_AGE = "notifications.queue.job.age"
PROCESS_DURATION = "messaging.process.duration"
_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0)
_AGE_BUCKETS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
INSTRUMENTS: dict[str, tuple[str, str, str]] = {
    MESSAGES: ("counter", "{message}", "Recipients finished by a page job: notification.outcome sent, failed, "
               "skipped or retried, notification.code the reason"),
    THROTTLED: ("counter", "{response}", "429 answers, by notification.throttle.source: channel or graph"),
    BUDGET_RATE: ("gauge", "{message}/s", "The shared budget's current rate for a tenant, as this instance last "
                  "wrote it (the limit, or lower after a 429)"),
    SEND_DURATION: ("histogram", "s", "One send to the channel (the connector's call; pacing waits apart)"),
    CLAIM_WINDOW: ("observable_gauge", "{recipient}", "Recipients claimed and not yet recorded, per tenant, in this "
                   "process (at most SendConcurrency): what a host that dies leaves in doubt"),
    JOB_AGE: ("histogram", "s", "A queue job's wait from when it was due (put on the queue, plus its delay) to "
              "when an instance picked it up"),
    PROCESS_DURATION: ("histogram", "s", "One queue job, from pickup to its end (semantic conventions' name)"),
}
_BUCKETS = {SEND_DURATION: _SECONDS_BUCKETS, PROCESS_DURATION: _SECONDS_BUCKETS, JOB_AGE: _AGE_BUCKETS}
NO_ATTRIBUTES: Mapping[str, Any] = {}
# Observable gauges read these when the SDK collects (set by the module that knows the figure).
_observers: dict[str, Callable[[], Iterable[tuple[float, Mapping[str, Any]]]]] = {}


class _Api:
    """The API's objects, made once the API is imported: the tracer, the meter's instruments, the propagator."""

    def __init__(self) -> None:
        from opentelemetry import context, metrics, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.context, self.trace = context, trace
        self.propagator = TraceContextTextMapPropagator()
        # Proxies: they follow a provider set after this (the worker's, the dev host's, a test's).
        self.tracer = trace.get_tracer(INSTRUMENTATION)
        meter = metrics.get_meter(INSTRUMENTATION)
        self.instruments: dict[str, Any] = {}
        for name, (kind, unit, description) in INSTRUMENTS.items():
            if kind == "observable_gauge":
                self.instruments[name] = meter.create_observable_gauge(
                    name, callbacks=[_observing(metrics, name)], unit=unit, description=description)
            elif kind == "histogram":
                self.instruments[name] = meter.create_histogram(
                    name, unit=unit, description=description, explicit_bucket_boundaries_advisory=_BUCKETS[name])
            else:
                create = meter.create_counter if kind == "counter" else meter.create_gauge
                self.instruments[name] = create(name, unit=unit, description=description)


def _observing(metrics: Any, name: str) -> Callable[[Any], Iterable[Any]]:
    def observe(_options: Any) -> Iterable[Any]:
        source = _observers.get(name)
        return [metrics.Observation(value, safe_attributes(attributes)) for value, attributes in (source() if source else ())]
    return observe


_api: _Api | None = None
_api_lock = threading.Lock()


def _get() -> _Api | None:
    """The API, when something imported it (an SDK was configured); None: telemetry is off."""
    global _api
    if _api is None:
        if _API not in sys.modules:
            return None
        with _api_lock:
            if _api is None:
                _api = _Api()
    return _api


def active() -> bool:
    return _get() is not None


# --- spans -----------------------------------------------------------------------------------------------------


class Span:
    """A span as the app sees it: attributes go through the credential filter. `NO_SPAN` when telemetry is off."""

    __slots__ = ("_span",)

    def __init__(self, span: Any) -> None:
        self._span = span

    def set(self, attributes: Mapping[str, Any]) -> None:
        if self._span is not None:
            self._span.set_attributes(safe_attributes(attributes))

    def failed(self, error: BaseException | str) -> None:
        """The span's status is an error, with its type or code only (an exception's message can name a person)."""
        if self._span is None:
            return
        api = _get()
        code = error if isinstance(error, str) else getattr(error, "code", None) or type(error).__name__
        self._span.set_attribute(ERROR_TYPE, safe_attributes({"c": code})["c"])
        self._span.set_status(api.trace.Status(api.trace.StatusCode.ERROR, str(code)))


NO_SPAN = Span(None)


@dataclass(frozen=True, slots=True)
class Parent:
    """A span's context captured where it is current, to parent spans made on other threads (`record_span`)."""

    context: Any


def parse_traceparent(value: Any) -> str | None:
    """`value` if it is a W3C traceparent naming a span; None for anything else (never an error)."""
    if not isinstance(value, str) or len(value) > 256:
        return None
    match = _TRACEPARENT_SHAPE.fullmatch(value)
    if match is None or value.startswith("ff-") or (value.startswith("00-") and match.group(1)):
        return None
    if value[3:35] == "0" * 32 or value[36:52] == "0" * 16:
        return None
    return value


def current_traceparent() -> str | None:
    """The current span's traceparent, to carry in a job or a record; None when there is none."""
    api = _get()
    if api is None:
        return None
    carrier: dict[str, str] = {}
    api.propagator.inject(carrier)
    return carrier.get(TRACEPARENT)


def with_traceparent(data: dict[str, Any]) -> dict[str, Any]:
    """`data` (a queue job) carrying the current span's traceparent, when there is one."""
    traceparent = current_traceparent()
    return {**data, TRACEPARENT: traceparent} if traceparent else data


def current() -> Parent | None:
    api = _get()
    return Parent(api.context.get_current()) if api is not None else None


@contextmanager
def job_span(name: str, traceparent: Any, attributes: Mapping[str, Any]) -> Iterator[Span]:
    """The span of one queue job: the child of the job's `traceparent`, or the root of a new trace when it has
    none or a malformed one; linked to the invocation's span when the host made one."""
    api = _get()
    if api is None:
        yield NO_SPAN
        return
    valid = parse_traceparent(traceparent)
    parent = api.propagator.extract({TRACEPARENT: valid}) if valid else api.context.Context()
    with _span(api, name, parent, attributes, api.trace.SpanKind.CONSUMER, link_current=True) as span:
        yield span


@contextmanager
def span(name: str, attributes: Mapping[str, Any], *, traceparent: Any = None) -> Iterator[Span]:
    """A span in the current trace; or, given a (stored) `traceparent`, in that one, linked to the current span."""
    api = _get()
    if api is None:
        yield NO_SPAN
        return
    valid = parse_traceparent(traceparent)
    parent = api.propagator.extract({TRACEPARENT: valid}) if valid else None
    with _span(api, name, parent, attributes, api.trace.SpanKind.INTERNAL, link_current=valid is not None) as made:
        yield made


@contextmanager
def _span(api: _Api, name: str, parent: Any, attributes: Mapping[str, Any], kind: Any, *,
          link_current: bool) -> Iterator[Span]:
    links = None
    if link_current:
        here = api.trace.get_current_span().get_span_context()
        links = [api.trace.Link(here)] if here.is_valid else None
    with api.tracer.start_as_current_span(name, context=parent, kind=kind, attributes=safe_attributes(attributes),
                                          links=links, record_exception=False,
                                          set_status_on_exception=False) as otel_span:
        made = Span(otel_span)
        try:
            yield made
        except Exception as error:
            made.failed(error)
            raise


def record_span(name: str, parent: Parent | None, started: float, ended: float, attributes: Mapping[str, Any], *,
                error: str = "") -> None:
    """A span that already happened (`started`, `ended`: time.time() seconds), the child of `parent`."""
    api = _get()
    if api is None or parent is None:
        return
    otel_span = api.tracer.start_span(name, context=parent.context, attributes=safe_attributes(attributes),
                                      start_time=int(started * 1e9))
    if error:
        Span(otel_span).failed(error)
    otel_span.end(end_time=int(ended * 1e9))


# --- metrics ---------------------------------------------------------------------------------------------------


def add(name: str, amount: float, attributes: Mapping[str, Any]) -> None:
    """Add to a counter of INSTRUMENTS."""
    api = _get()
    if api is not None and amount:
        api.instruments[name].add(amount, safe_attributes(attributes))


def record(name: str, value: float, attributes: Mapping[str, Any]) -> None:
    """Record a histogram's value, or set a gauge, of INSTRUMENTS."""
    api = _get()
    if api is None:
        return
    instrument = api.instruments[name]
    (instrument.set if INSTRUMENTS[name][0] == "gauge" else instrument.record)(value, safe_attributes(attributes))


def observe(name: str, source: Callable[[], Iterable[tuple[float, Mapping[str, Any]]]]) -> None:
    """What an observable gauge of INSTRUMENTS reads when metrics are collected: (value, attributes) pairs."""
    _observers[name] = source


def annotate(attributes: Mapping[str, Any]) -> None:
    """Add attributes to the current span (a job's: its counts, its tenants)."""
    api = _get()
    if api is not None:
        api.trace.get_current_span().set_attributes(safe_attributes(attributes))


class _Timed:
    """Records the block's duration in a histogram of INSTRUMENTS, with error.type when it raised."""

    __slots__ = ("_name", "_attributes", "_started")

    def __init__(self, name: str, attributes: Mapping[str, Any]) -> None:
        self._name, self._attributes = name, attributes

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        attributes = self._attributes
        if exc is not None:
            attributes = {**attributes, ERROR_TYPE: getattr(exc, "code", None) or type(exc).__name__}
        record(self._name, time.perf_counter() - self._started, attributes)


def timed(name: str, attributes: Mapping[str, Any]) -> AbstractContextManager[None]:
    """`with tracing.timed(SEND_DURATION, {...}):` the block's seconds in the histogram (nothing when off)."""
    return _Timed(name, attributes) if _get() is not None else nullcontext()
