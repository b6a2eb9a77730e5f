"""Scheduled and cancellable notifications: notBefore on the queue or the timer, cancel before or half-way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.functions.timer import TimerRequest

import ScheduledNotificationsFunction
from shared_code.app import services
from tests.support.builders import reference
from tests.support.notify_calls import body, call, drain, queued, seed, status


@pytest.mark.slow
def test_a_notification_scheduled_ahead_arrives_no_earlier_than_its_time(app_env, connector):
    seed(connector, {"c-1": "en-US"})
    not_before = datetime.now(UTC) + timedelta(seconds=5)

    response = call("POST", {"to": {"conversation": "c-1"}, "id": "later", "text": "ping",
                             "notBefore": not_before.isoformat().replace("+00:00", "Z")})
    scheduled = status("later")["state"]
    drain(app_env, lambda: connector.total_delivered() == 1, timeout=20)

    assert (response.status_code, scheduled) == (202, "scheduled")
    assert connector.texts("c-1") == ["ping"]
    assert connector.arrival_times("c-1")[0] >= not_before.timestamp()


def test_a_scheduled_notification_that_is_cancelled_never_arrives(app_env, connector):
    seed(connector, {"c-1": "en-US"})
    not_before = datetime.now(UTC) + timedelta(seconds=2)
    call("POST", {"to": {"conversation": "c-1"}, "id": "oops", "text": "ping", "notBefore": not_before.isoformat()})

    cancelled = call("DELETE", notification_id="oops")
    drain(app_env, lambda: status("oops")["cancelled"] == 1, timeout=20)

    assert (cancelled.status_code, body(cancelled)["state"]) == (200, "cancelled")
    assert {k: status("oops")[k] for k in ("state", "total", "sent", "cancelled", "pending")} == {
        "state": "cancelled", "total": 1, "sent": 0, "cancelled": 1, "pending": 0}
    assert connector.total_delivered() == 0


def test_cancelling_half_way_stops_the_rest_of_a_broadcast_and_the_counts_say_so(app_env, connector):
    app_env.set(SendRatePerSecond="5000", BroadcastPageSize="100")
    refs = [reference(connector.url, f"c-{i:03d}") for i in range(300)]
    services.get().addresses.save_many(refs, trusted=False)
    call("POST", {"to": "all", "id": "big", "text": "news"})

    # One message at a time: the first page job runs, then the caller cancels.
    drain(app_env, lambda: connector.total_delivered() >= 100, batch=1)
    call("DELETE", notification_id="big")
    sent_before_cancel = connector.total_delivered()
    drain(app_env, lambda: status("big")["scanComplete"] and status("big")["pending"] == 0)

    final = status("big")
    assert {k: final[k] for k in ("state", "total", "sent", "cancelled", "pending")} == {
        "state": "cancelled", "total": 300, "sent": sent_before_cancel, "cancelled": 300 - sent_before_cancel,
        "pending": 0}
    assert 100 <= sent_before_cancel < 300
    assert connector.total_delivered() == sent_before_cancel


def test_a_notification_beyond_seven_days_is_picked_up_by_the_timer_when_due(app_env, connector):
    seed(connector, {"c-1": "en-US"})
    start = datetime.now(UTC)
    not_before = start + timedelta(days=8)
    app = services.get()

    response = call("POST", {"to": "all", "id": "far", "text": "see you", "notBefore": not_before.isoformat()})
    parked = (status("far")["state"], queued())
    app.clock = lambda: start + timedelta(days=3)
    ScheduledNotificationsFunction.main(TimerRequest(past_due=False))
    early = queued()
    app.clock = lambda: not_before + timedelta(seconds=1)
    ScheduledNotificationsFunction.main(TimerRequest(past_due=False))
    drain(app_env, lambda: status("far")["state"] == "done")

    assert (response.status_code, parked, early) == (202, ("scheduled", []), [])
    assert connector.texts("c-1") == ["see you"]
