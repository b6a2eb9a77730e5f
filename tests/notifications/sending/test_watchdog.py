"""A page's watchdog: it ends with its run, watches a fresh beat again later, re-issues exactly the unfinished
recipients of a stale one (once, however many watchdogs race), gives up on a page that never progresses, and a
forged watch job goes to poison."""

from __future__ import annotations

import base64
import json
import threading
import time

import azure.functions.queue as func_queue
import pytest

import NotifyQueueFunction
from shared_code.app import services
from shared_code.notifications.audience import fanout
from shared_code.notifications.records.ledger import DeliveryState
from shared_code.notifications.records.store import MAX_RESUMES
from shared_code.notifications.sending import watch
from shared_code.notifications.sending.watch import Watched, WatchJob
from tests.support.broadcasts import broadcast, poisoned, seed
from tests.support.stored import queue_count

PAGE = "000000"
RUN = "a1" * 16


def frozen_page(connector, nid: str, count: int):
    """A broadcast's only page frozen by its scan, and nothing on the queue."""
    seed(connector.url, count)
    app = services.get()
    fanout.run_scan(fanout.ScanJob(broadcast("watched", job_id=nid)), app)
    app.queue().clear_messages()
    return app.notifications.get_page(nid, PAGE)


def beating(nid: str, at: float, run: str = RUN) -> None:
    """The page's row as a page job's heartbeat leaves it: `run` beat at `at`."""
    services.get().notifications.save_counts(nid, PAGE, lambda: services.get().notifications.get_page(nid, PAGE).counts,
                                             runs=lambda runs: {**runs, run: at})


def queued_page_jobs() -> list[dict]:
    found = [json.loads(base64.b64decode(m.content)) for m in services.get().queue().receive_messages(max_messages=32)]
    return [job for job in found if job["kind"] == "page"]


def all_queued(app_env) -> int:
    """Messages on the jobs queue, delayed ones too."""
    return queue_count(app_env.values["AzureWebJobsStorage"], app_env.values["JobsQueueName"])


def test_a_watch_whose_run_has_ended_ends_and_queues_nothing(app_env, connector):
    frozen_page(connector, "n-ended", 3)

    assert watch.run_watch(WatchJob("n-ended", PAGE, RUN), services.get()) is Watched.ENDED
    assert all_queued(app_env) == 0


def test_a_watch_of_a_fresh_beat_queues_itself_again_delayed(app_env, connector):
    app_env.set(PageWatchSeconds="20")
    frozen_page(connector, "n-fresh", 3)
    beating("n-fresh", time.time() - 2)

    assert watch.run_watch(WatchJob("n-fresh", PAGE, RUN), services.get()) is Watched.ALIVE
    assert all_queued(app_env) == 1 and list(services.get().queue().peek_messages()) == []  # delayed
    assert services.get().notifications.get_page("n-fresh", PAGE).runs == {RUN: pytest.approx(time.time() - 2, abs=5)}


def test_a_watch_of_a_stale_beat_reissues_exactly_the_unfinished_recipients(app_env, connector):
    app_env.set(PageWatchSeconds="20")
    page = frozen_page(connector, "n-stale", 8)
    keys, ledger = page.keys, services.get().ledger
    # 0, 1 sent and 2 gone before the host died; 3 in flight when it died; 4 to be retried; 5, 6, 7 never tried.
    ledger.record_skips("n-stale", PAGE, [(keys[0], DeliveryState.SENT, ""), (keys[1], DeliveryState.SENT, ""),
                                         (keys[2], DeliveryState.GONE, "gone")])
    ledger.claim("n-stale", PAGE, keys[3])
    ledger.record_skips("n-stale", PAGE, [(keys[4], DeliveryState.RETRY, "unavailable")])
    beating("n-stale", time.time() - 60)

    assert watch.run_watch(WatchJob("n-stale", PAGE, RUN, attempt=2), services.get()) is Watched.REISSUED

    [job] = queued_page_jobs()
    assert job["keys"] == [k.to_json() for k in keys[3:]]
    assert job["attempt"] == 3
    row = services.get().notifications.get_page("n-stale", PAGE)
    assert row.runs == {}
    assert (row.counts.sent, row.counts.gone, row.resumed) == (2, 1, 1)


def test_two_watchdogs_racing_over_a_stale_run_reissue_the_page_once(app_env, connector):
    frozen_page(connector, "n-race", 4)
    beating("n-race", time.time() - 60)
    app = services.get()
    store = app.notifications
    both_read = threading.Barrier(2, timeout=10)
    read = store.get_page
    first_reads: set[int] = set()

    def get_page(*args):  # each watchdog's first read waits for the other's: both see the same stale row
        found = read(*args)
        if threading.get_ident() not in first_reads:
            first_reads.add(threading.get_ident())
            both_read.wait()
        return found

    store.get_page = get_page
    results: list[Watched] = []
    watchdogs = [threading.Thread(target=lambda: results.append(watch.run_watch(WatchJob("n-race", PAGE, RUN), app)))
                 for _ in range(2)]
    for thread in watchdogs:
        thread.start()
    for thread in watchdogs:
        thread.join(20)

    assert sorted(results) == [Watched.ENDED, Watched.REISSUED]
    assert len(queued_page_jobs()) == 1


def test_a_page_whose_host_keeps_dying_with_nothing_finished_is_left_to_the_sweep(app_env, connector):
    frozen_page(connector, "n-doomed", 3)
    store = services.get().notifications
    page = store.get_page("n-doomed", PAGE)
    store.replace_runs(page, "n-doomed", {RUN: time.time() - 60}, page.counts, resumed=MAX_RESUMES, resumed_at=0)

    assert watch.run_watch(WatchJob("n-doomed", PAGE, RUN), services.get()) is Watched.GIVEN_UP

    assert queued_page_jobs() == []
    assert store.get_page("n-doomed", PAGE).runs == {}


def test_a_forged_watch_job_for_a_page_never_frozen_goes_to_poison(app_env, connector):
    frozen_page(connector, "n-forged", 2)
    forged = {"v": 1, "kind": "watch", "notification": "n-forged", "page": "000099", "run": RUN, "attempt": 1}

    NotifyQueueFunction.main(func_queue.QueueMessage(id="forged", body=json.dumps(forged).encode(), dequeue_count=1))

    [record] = poisoned(app_env)
    assert "never frozen" in record["reason"]
    assert queued_page_jobs() == [] and connector.total_delivered() == 0
