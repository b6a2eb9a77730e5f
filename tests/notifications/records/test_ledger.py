"""The delivery ledger in batches: a chunk's claims and the previous chunk's outcomes in one transaction."""

from __future__ import annotations

import pytest

from shared_code.app import services
from shared_code.notifications.records.ledger import ClaimOutcome, DeliveryState, Finish, RecipientKey


def keys(count: int) -> list[RecipientKey]:
    return [RecipientKey("test", f"c-{i}") for i in range(count)]


def test_settle_claims_a_chunk_and_records_the_previous_one(app_env):
    ledger = services.get().ledger
    first, second = keys(6)[:3], keys(6)[3:]

    claims = ledger.settle("n", "000000", [], [(k, None) for k in first])
    assert [c.outcome for c in claims] == [ClaimOutcome.CLAIMED] * 3
    finishes = [Finish(c.delivery, DeliveryState.SENT) for c in claims]
    more = ledger.settle("n", "000000", finishes, [(k, None) for k in second])

    assert [c.outcome for c in more] == [ClaimOutcome.CLAIMED] * 3
    states = {k: d.state for k, d in ledger.page("n", "000000").items()}
    assert states == {**dict.fromkeys(first, DeliveryState.SENT), **dict.fromkeys(second, DeliveryState.IN_PROGRESS)}


def test_a_recipient_claimed_by_another_host_is_not_claimed_twice(app_env):
    ledger = services.get().ledger
    taken, free = keys(2)
    other_host = ledger.claim("n", "000000", taken)

    claims = ledger.settle("n", "000000", [], [(taken, None), (free, None)])

    assert other_host.outcome is ClaimOutcome.CLAIMED
    assert [c.outcome for c in claims] == [ClaimOutcome.BUSY, ClaimOutcome.CLAIMED]


def test_a_throttled_try_does_not_count_as_an_attempt(app_env):
    ledger = services.get().ledger
    key = keys(1)[0]
    claim = ledger.claim("n", "000000", key)
    ledger.settle("n", "000000", [Finish(claim.delivery, DeliveryState.RETRY, "throttled", counted=False)])
    again = ledger.settle("n", "000000", [], [(key, ledger.page("n", "000000")[key])])

    assert again[0].outcome is ClaimOutcome.CLAIMED
    assert again[0].delivery.attempts == 1


@pytest.mark.slow
def test_a_recipient_throttled_twenty_times_in_a_row_is_delivered_and_counted_as_sent(app_env, connector):
    from stubs.connector import Fault
    from tests.support.broadcasts import broadcast, driver, is_done, seed, status

    app_env.set(SendRatePerSecond="2000", TenantSendRatePerSecond="2000", RetryDelayScale="0.01", SendMaxAttempts="2",
                DeliveryLeaseSeconds="3")  # past a second of 429s, it goes back to the queue, still uncounted
    seed(connector.url, 3, prefix="hot")
    connector.fail_next("hot-00001", Fault(429, retry_after=1), times=20)  # each pauses the tenant 0.01 s
    nid = broadcast(job_id="n-20x429")
    driver(app_env).run_until(is_done(nid), timeout=60)

    assert connector.attempts("hot-00001") == 21
    assert [len(connector.activities(f"hot-{i:05d}")) for i in range(3)] == [1, 1, 1]
    got = status(nid)
    assert (got["sent"], got["failed"]) == (3, 0)


def test_the_ledger_keeps_the_activity_id_and_time_of_each_message_sent(app_env, connector):
    from tests.support.broadcasts import FAST, broadcast, driver, is_done, seed

    app_env.set(**FAST)
    ids = seed(connector.url, 3)
    nid = broadcast("kept", job_id="n-activity-ids")
    driver(app_env).run_until(is_done(nid), timeout=30)

    records = services.get().ledger.page(nid, "000000")
    kept = {key.conversation_id: (record.activity_id, record.sent_at is not None) for key, record in records.items()}
    assert kept == {cid: (connector.activities(cid)[0]["id"], True) for cid in ids}
