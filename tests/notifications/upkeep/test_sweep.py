"""The sweep: a broadcast whose queue messages were lost, held or poisoned still finishes, exactly once."""

from __future__ import annotations

import json
import time

import pytest
from azure.functions.timer import TimerRequest

import ScheduledNotificationsFunction
from shared_code.app import services
from tests.support.broadcasts import FAST, broadcast, driver, is_done, seed, status


def fire_the_timer() -> None:
    ScheduledNotificationsFunction.main(TimerRequest(past_due=False))


def drain(app_env, **kwargs) -> None:
    host = driver(app_env, **kwargs)
    while host.step():
        pass


@pytest.mark.slow
def test_a_scan_job_held_by_an_instance_that_never_finishes_is_resumed_by_the_sweep(app_env, connector):
    app_env.set(**{**FAST, "StalledAfterSeconds": "0", "BroadcastPageSize": "100"})
    ids = seed(connector.url, 500)  # five pages, every one behind the held scan
    nid = broadcast("exactly once", job_id="n-held-scan")
    # An instance takes the first scan job and never finishes it: invisible for an hour.
    held = driver(app_env).queue.receive_messages(visibility_timeout=3600, max_messages=1)
    assert len(list(held)) == 1
    assert status(nid)["state"] == "running"

    fire_the_timer()
    driver(app_env).run_until(is_done(nid), timeout=120)

    assert connector.total_delivered() == 500
    assert all(len(connector.activities(cid)) == 1 for cid in ids)
    got = status(nid)
    assert (got["sent"], got["failed"], got["pending"]) == (500, 0, 0)


def test_a_page_job_deleted_from_the_queue_is_reissued_with_exact_counts(app_env, connector):
    app_env.set(**{**FAST, "StalledAfterSeconds": "0", "BroadcastPageSize": "50"})
    ids = seed(connector.url, 150)
    nid = broadcast("every one", job_id="n-lost-page")
    lost: list[str] = []

    def main(msg) -> None:  # the first job of page 000001 vanishes (deleted by hand, or lost)
        data = json.loads(msg.get_body())
        if data.get("kind") == "page" and data.get("page") == "000001" and not lost:
            lost.append(data["page"])
            return
        import NotifyQueueFunction

        NotifyQueueFunction.main(msg)

    drain(app_env, main=main)
    assert lost and status(nid)["pending"] == 50

    fire_the_timer()
    drain(app_env)

    assert all(len(connector.activities(cid)) == 1 for cid in ids)
    got = status(nid)
    assert (got["state"], got["sent"], got["pending"]) == ("done", 150, 0)


def test_a_page_that_can_never_be_sent_ends_failed_with_the_reason(app_env, connector):
    app_env.set(**{**FAST, "StalledAfterSeconds": "0", "BroadcastPageSize": "10"})
    seed(connector.url, 20)
    nid = broadcast("nobody on page one", job_id="n-poisoned-page")

    def main(msg) -> None:  # page 000001 always hits an infrastructure failure: the host poisons it
        data = json.loads(msg.get_body())
        if data.get("kind") == "page" and data.get("page") == "000001":
            raise ConnectionError("storage unreachable")
        import NotifyQueueFunction

        NotifyQueueFunction.main(msg)

    for _ in range(5):  # each sweep re-issues the page; the host poisons it again
        drain(app_env, main=main, visibility=1, max_dequeue=1)
        fire_the_timer()
    drain(app_env, main=main, visibility=1, max_dequeue=1)

    got = status(nid)
    assert (got["state"], got["sent"], got["failed"], got["pending"]) == ("done", 10, 10, 0)
    assert {e["code"] for e in got["errors"]} == {"page_failed"}


def test_a_finished_broadcast_is_settled_and_left_alone(app_env, connector):
    app_env.set(**{**FAST, "StalledAfterSeconds": "0"})
    seed(connector.url, 3)
    nid = broadcast("done already", job_id="n-settled")
    drain(app_env)

    fire_the_timer()

    assert services.get().notifications.unsettled() == []
    assert status(nid)["state"] == "done"
    assert driver(app_env).step() == 0  # nothing re-issued


def test_a_broadcast_that_moved_recently_is_not_resumed(app_env, connector):
    app_env.set(**{**FAST, "StalledAfterSeconds": "900"})
    seed(connector.url, 3)
    nid = broadcast("in progress", job_id="n-fresh")
    held = driver(app_env).queue.receive_messages(visibility_timeout=3600, max_messages=1)
    assert len(list(held)) == 1

    fire_the_timer()

    assert driver(app_env).step() == 0  # nothing re-issued: its scan may still be running
    assert status(nid)["state"] == "running"


def test_a_page_whose_job_still_beats_is_left_to_it_by_the_sweep(app_env, connector):
    app_env.set(**{**FAST, "StalledAfterSeconds": "0", "PageWatchSeconds": "20"})
    seed(connector.url, 3)
    nid = broadcast("being sent", job_id="n-beating")
    host = driver(app_env)
    host.step()  # the scan: the page frozen, its job queued
    held = host.queue.receive_messages(visibility_timeout=3600, max_messages=1)  # a host runs the page job...
    assert len(list(held)) == 1
    store = services.get().notifications
    store.save_counts(nid, "000000", lambda: store.get_page(nid, "000000").counts,
                      runs=lambda runs: {"a1" * 16: time.time()})  # ...and its heartbeat is fresh

    fire_the_timer()

    assert host.step() == 0  # nothing re-issued
    assert status(nid)["pending"] == 3
