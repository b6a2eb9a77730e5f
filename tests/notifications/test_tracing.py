"""A notification's trace: one trace from POST /api/notify through every queue hop (scan, pages, sends, retries,
the sweep's re-issues), spans that name nobody, and a job's traceparent that can never fail it."""

from __future__ import annotations

import base64
import json

import pytest

from shared_code.app import services
from shared_code.notifications import queue_runner
from shared_code.notifications.upkeep import sweep
from shared_code.plumbing import tracing
from stubs.connector import Fault
from tests.support.broadcasts import FAST, driver, is_done, seed
from tests.support.notify_calls import call

VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def by_name(spans, name: str) -> list:
    return [s for s in spans if s.name == name]


def notify(notification_id: str, **body: object) -> None:
    response = call("POST", {"to": "all", "text": "hello", "id": notification_id, **body})
    assert response.status_code == 202


@pytest.mark.slow
def test_a_broadcast_over_three_pages_is_one_trace_linking_request_scans_pages_and_sends(app_env, connector, telemetry):
    app_env.set(**FAST, BroadcastPageSize="100")
    seed(connector.url, 300)

    notify("n-traced")
    driver(app_env).run_until(is_done("n-traced"), timeout=60)

    spans = telemetry.spans("n-traced")
    assert len({s.context.trace_id for s in spans}) == 1
    [root] = by_name(spans, tracing.NOTIFY)
    assert root.parent is None
    scans, pages, sends = (by_name(spans, name) for name in ("notifications.scan", "notifications.page", tracing.SEND))
    ids = {s.context.span_id: s for s in spans}
    assert all(ids[scan.parent.span_id].name in (tracing.NOTIFY, "notifications.scan") for scan in scans)
    assert sum(scan.attributes.get("notification.recipients", 0) for scan in scans) == 300
    assert sorted(p.attributes["notification.page"] for p in pages) == ["000000", "000001", "000002"]
    assert all(ids[page.parent.span_id].name == "notifications.scan" for page in pages)
    assert [(p.attributes["notification.recipients"], p.attributes["notification.sent"]) for p in pages] == [(100, 100)] * 3
    # Sends are sampled (the first of each page job, then one in SENT_SPAN_EVERY), each the child of its page.
    assert len(sends) == 3 * len(range(0, 100, tracing.SENT_SPAN_EVERY))
    assert {ids[send.parent.span_id].name for send in sends} == {"notifications.page"}
    assert {send.attributes["notification.outcome"] for send in sends} == {"sent"}


def test_a_retried_page_job_stays_in_the_notification_trace_as_the_child_of_the_first_attempt(app_env, connector,
                                                                                           telemetry):
    app_env.set(**FAST)
    ids = seed(connector.url, 3)
    connector.fail_next(ids[1], Fault(503))

    notify("n-retried")
    driver(app_env).run_until(is_done("n-retried"), timeout=30)

    spans = telemetry.spans("n-retried")
    assert len({s.context.trace_id for s in spans}) == 1
    first, second = sorted(by_name(spans, "notifications.page"), key=lambda s: s.attributes["notification.attempt"])
    assert (first.attributes["notification.attempt"], second.attributes["notification.attempt"]) == (1, 2)
    assert second.parent.span_id == first.context.span_id
    assert (first.attributes["notification.sent"], first.attributes["notification.retry"]) == (2, 1)
    assert second.attributes["notification.sent"] == 1
    [retried] = [s for s in by_name(spans, tracing.SEND) if s.attributes["notification.outcome"] == "retry"]
    assert (retried.parent.span_id, retried.attributes["notification.code"]) == (first.context.span_id, "unavailable")


def run_job(traceparent: object, *, notification_id: str) -> queue_runner.Handled:
    job = {"v": 1, "to": "all", "text": "hi", "id": notification_id}
    if traceparent is not None:
        job["traceparent"] = traceparent
    return queue_runner.handle_queue_message(json.dumps(job).encode(), services.get(), message_id="m-1")


@pytest.mark.parametrize("traceparent", [
    None,  # a job written before traces were carried
    "not a traceparent",
    42,
    "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # an all-zero trace id
    "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # an all-zero span id
    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # the forbidden version
    VALID + "-more",  # version 00 has nothing after the flags
    VALID.upper(),
])
def test_a_job_without_a_valid_traceparent_runs_and_starts_a_new_trace(app_env, telemetry, traceparent):
    handled = run_job(traceparent, notification_id="n-new-trace")

    assert handled.poisoned == ""
    [span] = by_name(telemetry.spans("n-new-trace"), "notifications.message")
    assert span.parent is None and span.context.trace_id != int(VALID[3:35], 16)


def test_a_job_with_a_traceparent_is_a_span_of_that_trace_and_passes_it_on(app_env, telemetry):
    run_job(VALID, notification_id="n-continued")

    [span] = by_name(telemetry.spans("n-continued"), "notifications.message")
    assert (span.context.trace_id, span.parent.span_id) == (int(VALID[3:35], 16), int(VALID[36:52], 16))
    [scan] = [json.loads(base64.b64decode(m.content)) for m in services.get().queue().peek_messages()]
    assert scan["traceparent"].split("-")[1:3] == [VALID[3:35], f"{span.context.span_id:016x}"]


def test_the_sweep_reissues_a_lost_scan_in_the_trace_of_its_notification(app_env, connector, telemetry):
    app_env.set(**FAST, StalledAfterSeconds="0")
    seed(connector.url, 2)
    notify("n-swept")
    queue = services.get().queue()
    for message in queue.receive_messages():  # the first scan is lost
        queue.delete_message(message)

    sweep.resume_stalled(services.get())

    [root] = by_name(telemetry.spans("n-swept"), tracing.NOTIFY)
    [scan] = [json.loads(base64.b64decode(m.content)) for m in queue.peek_messages()]
    assert scan["kind"] == "scan" and int(scan["traceparent"].split("-")[1], 16) == root.context.trace_id


def test_no_span_attribute_names_a_person_or_a_conversation_or_holds_the_text(app_env, connector, telemetry):
    app_env.set(**FAST)
    ids = seed(connector.url, 4, prefix="29:1f2e3d4c5b6a79880a1b2c3d4e5f")
    connector.fail_next(ids[0], Fault(403))  # gone: a span with its code
    connector.fail_next(ids[1], Fault(500))  # retried
    text = "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl for 29:1f2e3d4c5b6a79880a1b2c3d4e5f"

    notify("n-private", text=text)
    driver(app_env).run_until(is_done("n-private"), timeout=30)

    spans = telemetry.spans()
    values = [str(value) for s in spans for value in (s.attributes or {}).values()]
    values += [str(value) for s in spans for event in s.events for value in (event.attributes or {}).values()]
    assert len(by_name(spans, tracing.SEND)) >= 3 and values
    assert not [v for v in values if "29:" in v or "eyJ" in v or "Bearer" in v or "hello" in v]


def test_the_send_metrics_count_outcomes_by_code_throttles_latency_and_job_age(app_env, connector, telemetry):
    app_env.set(**{**FAST, "RetryDelayScale": "0.01"})  # the 429's second of Retry-After: a hundredth
    ids = seed(connector.url, 4)
    connector.fail_next(ids[0], Fault(403))
    connector.fail_next(ids[1], Fault(429, retry_after=1))  # tried again at once, then sent

    notify("n-metrics")
    driver(app_env).run_until(is_done("n-metrics"), timeout=30)

    found = telemetry.metrics()
    messages = {(p.attributes["notification.outcome"], p.attributes.get("notification.code")): p.value
                for p in found[tracing.MESSAGES]}
    assert messages == {("sent", None): 3, ("skipped", "ConversationBlockedByUser"): 1}
    [throttled] = found[tracing.THROTTLED]
    assert (throttled.attributes["notification.throttle.source"], throttled.value) == ("channel", 1)
    assert sum(p.count for p in found[tracing.SEND_DURATION]) == 5  # 4 recipients, one tried twice
    assert {p.attributes["notification.job.kind"] for p in found[tracing.JOB_AGE]} >= {"scan", "page"}
    assert all(p.count and p.min >= 0 for p in found[tracing.JOB_AGE] + found[tracing.PROCESS_DURATION])
    assert [p.value for p in found[tracing.BUDGET_RATE]] and all(p.value > 0 for p in found[tracing.BUDGET_RATE])
    occupancy = [p.value for p in found[tracing.CLAIM_WINDOW]]  # per tenant this process sent to
    assert occupancy and set(occupancy) == {0}  # everything claimed was recorded
