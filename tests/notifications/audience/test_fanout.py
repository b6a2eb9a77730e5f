"""Broadcast fan-out on Azurite: scan and page jobs, retries, rate limit, exactly-once delivery."""

from __future__ import annotations

import pytest

from shared_code.app import services
from shared_code.notifications import jobs
from shared_code.notifications.audience import fanout
from stubs.connector import Fault, RandomFaults
from tests.support.broadcasts import FAST, HostDied, broadcast, driver, is_done, queue_main_with_page_hook, seed, status
from tests.support.builders import reference


def test_broadcast_reaches_every_saved_address_once(app_env, connector):
    app_env.set(**{**FAST, "BroadcastPageSize": "7"})
    ids = seed(connector.url, 30)

    nid = broadcast("hi everyone")
    driver(app_env).run_until(is_done(nid), timeout=30)

    assert {cid: connector.texts(cid) for cid in ids} == {cid: ["hi everyone"] for cid in ids}
    got = status(nid)
    assert (got["total"], got["sent"], got["failed"], got["pending"], got["pages"]) == (30, 30, 0, 0, 5)
    assert got["skipped"] == {"inactive": 0, "gone": 0}




@pytest.mark.slow
def test_broadcast_of_500_with_throttling_outages_and_blocked_users_is_exactly_once(app_env, connector):
    # GIVEN 500 saved users (each one's tries are its own: the size changes how many meet each fault, not how); the channel throttles 10% of sends (Retry-After 1 s), fails 5% with 503,
    # and 2% of users blocked the bot (403 on every try)
    app_env.set(**{**FAST, "RetryDelayScale": "0.02", "BroadcastPageSize": "250"})
    ids = seed(connector.url, 500)
    faults = RandomFaults(seed=11, throttled=0.10, unavailable=0.05, gone=0.02, retry_after=1)
    connector.faults = faults

    # WHEN the broadcast runs to the end
    nid = broadcast("to everyone")
    driver(app_env).run_until(is_done(nid), timeout=90)

    # THEN nobody got two messages, every reachable user got one, every blocked user is inactive
    received = {cid: len(connector.activities(cid)) for cid in ids}
    gone = {cid for cid in ids if faults.is_gone(cid)}
    assert gone and max(received.values()) == 1
    assert all(received[cid] == 0 for cid in gone)
    store = services.get().addresses
    assert all(not store.get(cid, "test").active for cid in gone)
    # AND the status counts are exactly what the channel recorded
    got = status(nid)
    sent = sum(received.values())
    assert got["total"] == 500 and got["pending"] == 0
    assert got["sent"] == sent
    assert got["skipped"] == {"inactive": 0, "gone": len(gone)}
    assert got["failed"] == 500 - sent - len(gone)
    assert sent >= 500 - len(gone) - 2  # five tries each: a give-up is possible but rare


def test_page_job_that_dies_after_k_sends_is_retried_without_duplicates(app_env, connector):

    app_env.set(**{**FAST, "SendConcurrency": "4", "BroadcastPageSize": "40", "DeliveryLeaseSeconds": "2"})
    ids = seed(connector.url, 40)
    sends = {"count": 0, "died_on": None}

    def die_after_k(key) -> None:
        sends["count"] += 1
        if sends["count"] == 15 and sends["died_on"] is None:
            sends["died_on"] = key.conversation_id
            raise HostDied()

    main = queue_main_with_page_hook(die_after_k)  # the queue function, dying in the page sender

    nid = broadcast("once only")
    host = driver(app_env, main=main, visibility=1)
    host.run_until(is_done(nid), timeout=30)

    assert any(isinstance(f, HostDied) for f in host.failures)
    assert {cid: len(connector.activities(cid)) for cid in ids} == dict.fromkeys(ids, 1)
    # The sends whose records the dead host never wrote are not resent (at-most-once), and say so.
    # The ledger records a chunk of SendConcurrency sends at once: no more than that are in doubt.
    got = status(nid)
    assert got["sent"] + got["failed"] == 40 and got["pending"] == 0
    assert 1 <= got["failed"] <= 4
    assert {e["code"] for e in got["errors"]} == {"outcome_unknown"}


@pytest.mark.slow
def test_two_hosts_on_the_same_queue_deliver_exactly_once(app_env, connector):
    # Short visibility and slow sends: messages reappear while the first host still runs them,
    # and the first scan job is queued twice (at-least-once delivery), so both hosts run the same pages.
    app_env.set(**{**FAST, "SendConcurrency": "4", "BroadcastPageSize": "25", "DeliveryLeaseSeconds": "3"})
    connector.latency = 0.04
    connector.faults = RandomFaults(seed=5, throttled=0.05, retry_after=1)
    ids = seed(connector.url, 150)
    nid = broadcast("two hosts")
    jobs.enqueue(fanout.ScanJob(nid).to_json(), services.get())

    hosts = [driver(app_env, visibility=1), driver(app_env, visibility=1)]
    threads = [h.run_in_thread(is_done(nid), timeout=60) for h in hosts]
    for thread in threads:
        thread.join()

    assert [f for h in hosts for f in h.failures if isinstance(f, AssertionError)] == []
    assert all(h.processed for h in hosts)
    assert {cid: len(connector.activities(cid)) for cid in ids} == dict.fromkeys(ids, 1)
    got = status(nid)
    assert (got["total"], got["sent"], got["pending"]) == (150, 150, 0)


def test_addresses_added_or_deactivated_during_a_broadcast_cause_no_crash_and_no_duplicates(app_env, connector):
    app_env.set(**{**FAST, "SendConcurrency": "2", "BroadcastPageSize": "10"})
    ids = seed(connector.url, 60)
    store = services.get().addresses
    changed = {"done": False}

    def change_the_table(conversation_id, activity) -> None:
        if changed["done"]:
            return
        changed["done"] = True
        store.save_many([reference(connector.url, f"late-{i}") for i in range(10)], trusted=False)
        store.save_many([reference(connector.url, f"a-{i}") for i in range(10)], trusted=False)  # sorts first
        for cid in ids[-15:]:
            store.deactivate("test", cid, "BotNotInConversationRoster")

    connector.on_activity = change_the_table
    nid = broadcast("while things change")
    driver(app_env).run_until(is_done(nid), timeout=30)

    delivered = connector.all_activities()
    assert all(len(items) == 1 for items in delivered.values())
    assert all(not cid.startswith("a-") for cid in delivered)  # added behind the scan: not part of it
    got = status(nid)
    assert got["sent"] == len(delivered)
    assert got["sent"] + got["skipped"]["inactive"] == got["total"]
    assert got["total"] >= 60 - 15


def test_a_bot_refused_by_the_channel_stops_the_whole_broadcast(app_env, connector):
    app_env.set(**{**FAST, "SendConcurrency": "1", "BroadcastPageSize": "10"})
    ids = seed(connector.url, 50)
    connector.fail_next(ids[12], Fault(403, "BotDisabledByAdmin"))

    nid = broadcast("nobody will get this")
    host = driver(app_env)
    host.run_until(lambda: status(nid)["state"] == "stopped", timeout=30)
    delivered = connector.total_delivered()
    while host.step():  # what is still queued runs and sends nothing
        pass

    got = status(nid)
    assert got["stopReason"].startswith("BotDisabledByAdmin")
    assert connector.total_delivered() == delivered < 50
    assert got["sent"] == delivered


def test_a_429_is_waited_out_and_retried_without_using_up_an_attempt(app_env, connector):
    import time

    app_env.set(SendRatePerSecond="777", RetryDelayScale="1", SendMaxAttempts="1")  # a bucket of this test's own
    seed(connector.url, 1, prefix="slow")
    connector.fail_next("slow-00000", Fault(429, retry_after=2))
    nid = broadcast(job_id="n-429")
    runner = driver(app_env)
    started = time.time()
    runner.run_until(is_done(nid), timeout=30)

    # One attempt allowed, one 429 spent: the recipient is still delivered, after the channel's Retry-After.
    assert connector.attempts("slow-00000") == 2
    assert connector.arrival_times("slow-00000")[0] >= started + 2
    got = status(nid)
    assert (got["sent"], got["failed"]) == (1, 0)


def test_a_429_pauses_every_sender_to_that_tenant_for_its_retry_after(app_env, connector):
    from shared_code.notifications.sending import pacing
    from shared_code.notifications.sending.rate_budget import shared_budget
    from shared_code.storage.addresses import Address

    app_env.set(RetryDelayScale="1")
    address = Address(reference(connector.url, "t-1"))
    app = services.get()
    pacing.pacer_for(app).throttled(address, 2.0)

    # Any sender of any page (or instance: the budget is a table row) waits out the Retry-After too.
    assert shared_budget(app.table_service, app.settings).acquire(pacing.tenant_of(address)) > 1.0
