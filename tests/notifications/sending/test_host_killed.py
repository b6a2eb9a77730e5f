"""A host killed (SIGKILL, a real process) in the middle of a page: nobody gets two messages, and the
sends in doubt are reported as outcome_unknown, no more of them than the send concurrency; the page's
watchdog hands it to another host within seconds, and the status moves while it is sent."""

from __future__ import annotations

import time

import pytest

from bench.host_process import HostProcess
from shared_code.app import services
from shared_code.notifications.upkeep import sweep
from tests.support.broadcasts import broadcast, seed, status

CONCURRENCY = 8


@pytest.mark.slow
def test_a_host_killed_mid_page_sends_nobody_twice_and_reports_the_sends_in_doubt(app_env, connector):
    settings = {"SendConcurrency": str(CONCURRENCY), "BroadcastPageSize": "100", "SendRatePerSecond": "300",
                "DeliveryLeaseSeconds": "2", "StalledAfterSeconds": "3", "RetryDelayScale": "0.1",
                "TenantSendRatePerSecond": "300", "PageWatchSeconds": "2"}  # the sweep waits for a stale heartbeat
    app_env.set(**settings)
    connector.latency = 0.02
    ids = seed(connector.url, 500)  # five pages: killed in the second
    nid = broadcast("exactly once, or at most once", job_id="n-killed")

    with HostProcess(app_env.values) as first:
        deadline = time.monotonic() + 60
        while connector.total_delivered() < 150 and time.monotonic() < deadline:
            time.sleep(0.01)
        first.kill()  # mid-page: a chunk of sends is in flight
    killed_at = connector.total_delivered()
    assert 150 <= killed_at < 500

    with HostProcess(app_env.values):
        started = swept = time.monotonic()
        while status(nid)["state"] != "done":
            assert time.monotonic() - started < 120, status(nid)
            time.sleep(0.5)
            if time.monotonic() - swept > 3.5:  # longer than StalledAfterSeconds and the lease: the dead host's
                sweep.resume_stalled(services.get())  # work is resumed
                swept = time.monotonic()

    counts = {cid: len(connector.activities(cid)) for cid in ids}
    assert max(counts.values()) == 1  # nobody twice
    got = status(nid)
    assert got["sent"] + got["failed"] == 500 and got["pending"] == 0
    assert got["failed"] <= CONCURRENCY
    if got["failed"]:
        assert {e["code"] for e in got["errors"]} == {"outcome_unknown"}
    # Those in doubt were sent or not; every one that is counted sent really arrived.
    assert got["sent"] <= connector.total_delivered() <= got["sent"] + got["failed"]


@pytest.mark.slow
def test_a_host_killed_mid_page_is_taken_over_by_another_within_seconds_with_its_status_moving(app_env, connector):
    # PageWatchSeconds 2: a beat every half second, a dead host noticed after 1.5 s without one.
    app_env.set(SendConcurrency=str(CONCURRENCY), PageWatchSeconds="2", DeliveryLeaseSeconds="3",
                SendRatePerSecond="300", TenantSendRatePerSecond="300", RetryDelayScale="0.1")
    connector.latency = 0.1  # 8 senders: 80 a second, so the one page of 300 takes about 4 s
    ids = seed(connector.url, 300)
    nid = broadcast("taken over", job_id="n-taken-over")

    with HostProcess(app_env.values) as first:
        deadline = time.monotonic() + 30
        while (running := status(nid))["sent"] == 0:  # the page's heartbeat writes its counts so far
            assert time.monotonic() < deadline, first.log_tail()
            time.sleep(0.05)
        first.kill()
    killed_at = time.monotonic()
    assert running["state"] == "running" and running["sent"] < 300

    with HostProcess(app_env.values) as second:
        while status(nid)["state"] != "done":
            assert time.monotonic() - killed_at < 60, (status(nid), second.log_tail())
            time.sleep(0.2)
    taken = time.monotonic() - killed_at

    assert max(len(connector.activities(cid)) for cid in ids) == 1  # nobody twice
    got = status(nid)
    assert got["sent"] + got["failed"] == 300 and got["failed"] <= CONCURRENCY
    assert {e["code"] for e in got["errors"]} <= {"outcome_unknown"}
    assert got["sent"] <= connector.total_delivered() <= got["sent"] + got["failed"]
    assert taken < 30  # the dead host's lease on the page's message is ten minutes
