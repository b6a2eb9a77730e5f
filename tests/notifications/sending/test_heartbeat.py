"""A running page job's heartbeat: its run and the counts so far in the page's row while it sends, its run
gone when it ends, and left behind for the watchdog when its process goes down."""

from __future__ import annotations

import threading
import time

import pytest

from shared_code.app import services
from shared_code.notifications.audience import fanout
from shared_code.notifications.sending import delivery
from stubs.connector import Fault
from tests.support.broadcasts import HostDied, broadcast, seed
from tests.support.stored import queue_count

PAGE = "000000"


def frozen_page_job(nid: str) -> fanout.PageJob:
    """The broadcast's first scan run here: its page frozen, its page job as the scan queued it."""
    app = services.get()
    fanout.run_scan(fanout.ScanJob(nid), app)
    app.queue().clear_messages()  # the page job and the next scan: this test runs the page itself
    return fanout.PageJob(nid, PAGE, tuple(app.notifications.get_page(nid, PAGE).keys))


def test_the_heartbeat_writes_its_run_and_the_counts_so_far_while_a_page_sends(app_env, connector):
    # PageWatchSeconds 1: a beat every quarter of a second; two senders at 0.1 s each: 30 take 1.5 s.
    app_env.set(PageWatchSeconds="1", SendConcurrency="2", SendRatePerSecond="1000", TenantSendRatePerSecond="1000")
    connector.latency = 0.1
    seed(connector.url, 30)
    job = frozen_page_job(broadcast("slowly", job_id="n-beat"))
    store = services.get().notifications
    page_job = threading.Thread(target=delivery.run_page, args=(job, services.get()))
    seen = []

    page_job.start()
    while page_job.is_alive():
        row = store.get_page("n-beat", PAGE)
        seen.append((dict(row.runs), row.counts.sent, connector.total_delivered()))
        time.sleep(0.1)
    page_job.join()

    beating = [(runs, sent) for runs, sent, delivered in seen if runs and 0 < sent and delivered < 30]
    assert beating, seen  # counts that moved while the page still had recipients to send
    [(runs, _)] = beating[-1:]
    [(run, beat)] = runs.items()
    assert len(run) == 32 and time.time() - 10 < beat <= time.time()


def test_a_page_that_ends_takes_its_run_out_and_leaves_the_final_counts(app_env, connector):
    app_env.set(PageWatchSeconds="1")
    seed(connector.url, 5)
    job = frozen_page_job(broadcast("once", job_id="n-ends"))

    delivery.run_page(job, services.get())

    row = services.get().notifications.get_page("n-ends", PAGE)
    assert row.runs == {}
    assert (row.counts.sent, row.counts.finished) == (5, 5)


def test_a_page_that_requeues_a_retry_still_takes_its_run_out(app_env, connector):
    app_env.set(PageWatchSeconds="1", RetryDelayScale="10")
    ids = seed(connector.url, 5)
    connector.fail_next(ids[2], Fault(503))
    job = frozen_page_job(broadcast("again later", job_id="n-retry"))

    tally = delivery.run_page(job, services.get())

    assert tally[delivery.Outcome.RETRY] == 1
    row = services.get().notifications.get_page("n-retry", PAGE)
    assert row.runs == {}
    assert row.counts.sent == 4


def test_a_page_job_queues_its_watchdog_delayed_when_it_starts(app_env, connector):
    app_env.set(PageWatchSeconds="30")
    seed(connector.url, 3)
    job = frozen_page_job(broadcast("watched", job_id="n-watched"))

    delivery.run_page(job, services.get())

    queue = services.get().queue()
    assert list(queue.peek_messages(max_messages=32)) == []  # none visible yet: the watch is delayed
    assert queue_count(app_env.values["AzureWebJobsStorage"], app_env.values["JobsQueueName"]) == 1


def test_a_page_job_whose_process_goes_down_leaves_its_run_for_the_watchdog(app_env, connector):
    app_env.set(PageWatchSeconds="1")
    seed(connector.url, 5)
    job = frozen_page_job(broadcast("cut short", job_id="n-dies"))

    def die(key) -> None:
        raise HostDied()

    with pytest.raises(HostDied):
        delivery.run_page(job, services.get(), after_send=die)

    [beat] = services.get().notifications.get_page("n-dies", PAGE).runs.values()
    assert beat <= time.time()
