"""The rate budget's allowance logic and the conversation limiter, with an injected clock (no storage, no sleeping)."""

from __future__ import annotations

import random

import pytest

from shared_code.notifications.sending.rate_budget import (
    CHUNK_SECONDS,
    DECREASE,
    FLOOR,
    LATE,
    RECOVERY,
    Allowance,
    Lease,
    Row,
    effective_rate,
    lease_from,
    throttle,
)
from shared_code.protocol.conversation_limits import TEAMS_CONVERSATION_LIMITS, ConversationLimiter
from tests.support.arrivals import max_in_any_window

LIMIT = 48.0


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def slots(lease: Lease) -> list[float]:
    return [lease.start + i * lease.spacing for i in range(lease.count)]


# --- leases -----------------------------------------------------------------
def test_lease_starts_now_when_the_schedule_is_idle():
    row, lease = lease_from(Row(tat=10.0), now=100.0, want=5, limit=LIMIT)

    assert (lease.start, lease.count, lease.spacing) == (100.0, 5, pytest.approx(1 / LIMIT, abs=1e-5))
    assert row.tat == pytest.approx(100.0 + 5 / LIMIT, abs=1e-5)


def test_lease_starts_after_the_slots_already_leased():
    row, first = lease_from(Row(), now=100.0, want=5, limit=LIMIT)
    _, second = lease_from(row, now=100.01, want=5, limit=LIMIT)

    assert second.start == pytest.approx(first.start + 5 / LIMIT, abs=1e-5)


def test_lease_is_at_most_half_a_second_of_the_rate():
    _, lease = lease_from(Row(), now=100.0, want=1000, limit=LIMIT)

    assert lease.count == int(LIMIT * CHUNK_SECONDS) == 24


def test_leases_from_twenty_processes_never_put_more_than_the_rate_in_any_sliding_second():
    # GIVEN 20 processes sharing one row, each leasing what its threads want and sending at its slots
    rng = random.Random(15)
    clock = FakeClock(0.0)
    row = Row()
    pending: list[list[float]] = [[] for _ in range(20)]
    sent: list[float] = []
    # WHEN they run for 10 simulated seconds in 1 ms steps, in a random order each step
    while clock.now < 10.0:
        for process in rng.sample(range(20), 20):
            queue = pending[process]
            while queue and queue[0] < clock.now - LATE:
                queue.pop(0)  # stale: dropped
            if queue and queue[0] <= clock.now:
                sent.append(queue.pop(0))
            elif not queue:
                row, lease = lease_from(row, clock.now, rng.randint(1, 16), LIMIT)
                queue.extend(slots(lease))
        clock.now += 0.001
    # THEN no sliding second holds more than the rate, and the rate is nearly all used
    assert max_in_any_window(sent, 1.0) <= LIMIT
    assert len([t for t in sent if 1.0 <= t < 9.0]) >= 0.9 * LIMIT * 8


# --- 429s ---------------------------------------------------------------------
def test_throttle_pauses_until_retry_after_and_no_slot_comes_before():
    row = throttle(Row(), now=100.0, limit=LIMIT, retry_after=3.0)

    _, lease = lease_from(row, now=100.5, want=4, limit=LIMIT)

    assert row.paused_until == 103.0
    assert lease.start == 103.0


def test_throttle_without_retry_after_pauses_one_second():
    row = throttle(Row(), now=100.0, limit=LIMIT, retry_after=None)

    assert row.paused_until == 101.0


def test_throttle_lowers_the_rate_once_for_one_burst_of_429s():
    row = throttle(Row(), now=100.0, limit=LIMIT, retry_after=1.0)
    row = throttle(row, now=100.2, limit=LIMIT, retry_after=1.0)  # another instance, same burst

    assert effective_rate(row, 100.3, LIMIT) == LIMIT * DECREASE


def test_throttle_again_after_a_second_lowers_the_rate_again():
    row = throttle(Row(), now=100.0, limit=LIMIT, retry_after=1.0)
    row = throttle(row, now=101.0, limit=LIMIT, retry_after=1.0)

    assert effective_rate(row, 101.0, LIMIT) == LIMIT * DECREASE * DECREASE


def test_throttle_never_lowers_the_rate_below_the_floor():
    row = Row()
    for second in range(20):
        row = throttle(row, now=100.0 + second, limit=LIMIT, retry_after=1.0)

    assert effective_rate(row, 120.0, LIMIT) == LIMIT * FLOOR


def test_rate_recovers_additively_after_the_pause_up_to_the_limit():
    row = throttle(Row(), now=100.0, limit=LIMIT, retry_after=2.0)  # paused until 102

    rates = [effective_rate(row, now, LIMIT) for now in (101.0, 102.0, 104.0, 200.0)]

    lowered = LIMIT * DECREASE
    assert rates == pytest.approx([lowered, lowered, lowered + 2 * RECOVERY * LIMIT, LIMIT])


def test_lease_spacing_follows_the_lowered_rate():
    row = throttle(Row(), now=100.0, limit=LIMIT, retry_after=1.0)

    _, lease = lease_from(row, now=101.0, want=100, limit=LIMIT)

    assert lease.spacing == pytest.approx(1 / (LIMIT * DECREASE), abs=1e-5)
    assert lease.count == int(LIMIT * DECREASE * CHUNK_SECONDS)  # half a second at the lowered rate


# --- a process's allowance ----------------------------------------------------
def test_allowance_gives_slots_in_order_then_nothing():
    allowance = Allowance()
    allowance.install(Lease(100.0, 3, 0.1, 100.0), checked=True)

    taken = [allowance.take(100.0) for _ in range(4)]

    assert [t[0] if t else None for t in taken] == pytest.approx([100.0, 100.1, 100.2, None])


def test_allowance_drops_stale_slots_instead_of_saving_them_up():
    allowance = Allowance()
    allowance.install(Lease(100.0, 10, 0.1, 100.0), checked=True)

    taken = allowance.take(100.55)  # slots 100.0 .. 100.5 are past: dropped, not sent late in a bunch

    assert taken is not None and taken[0] == pytest.approx(100.6)
    assert allowance.remaining() == 3


def test_allowance_gives_nothing_while_paused():
    allowance = Allowance()
    allowance.install(Lease(100.0, 10, 0.1, 100.0), checked=True)
    allowance.paused_until = 101.0

    assert allowance.take(100.0) is None


def test_allowance_first_chunk_is_twice_the_threads_waiting():
    allowance = Allowance()
    allowance.waiters = 3

    assert allowance.demand() == 6


def test_allowance_asks_at_least_for_the_threads_waiting():
    allowance = Allowance()
    allowance.want, allowance.waiters = 2, 5

    assert allowance.demand() == 5


def test_allowance_chunk_doubles_while_every_slot_is_taken_in_time():
    allowance = Allowance()
    allowance.install(Lease(100.0, 2, 0.1, 100.0), checked=True)
    allowance.want = 2

    taken = [allowance.take(100.0), allowance.take(100.1), allowance.take(100.2)]  # the third finds it spent

    assert taken[2] is None and allowance.demand() == 4


def test_allowance_chunk_shrinks_by_the_slots_that_went_stale():
    allowance = Allowance()
    allowance.install(Lease(100.0, 8, 0.1, 100.0), checked=True)
    allowance.want = 8

    for now in (100.0, 100.5, 100.6, 100.7):  # slots 100.1 .. 100.4 went stale
        allowance.take(now)
    allowance.take(101.0)  # the lease is spent

    assert allowance.demand() == 4


def test_allowance_drop_invalidates_the_slots_threads_already_hold():
    allowance = Allowance()
    allowance.install(Lease(100.0, 8, 0.1, 100.0), checked=True)
    taken = allowance.take(100.0)

    allowance.drop()  # a 429

    assert taken is not None and taken[1].valid is False
    assert allowance.take(100.1) is None


def test_allowance_ignores_a_lease_that_was_on_its_way_when_a_429_came():
    allowance = Allowance()
    allowance.throttled_at = 100.2

    allowance.install(Lease(100.5, 8, 0.1, leased_at=100.1), checked=True)

    assert allowance.remaining() == 0


def test_allowance_remembers_only_the_last_second_of_use():
    allowance = Allowance()
    allowance.install(Lease(100.0, 500, 0.01, 100.0), checked=True)

    for i in range(500):
        allowance.take(100.0 + i * 0.01)

    assert len(allowance.taken) <= 101  # memory stays bounded however long a broadcast runs


# --- conversation limits ----------------------------------------------------
def test_conversation_limiter_keeps_a_burst_of_20_within_7_per_second_and_8_per_2_seconds():
    clock = FakeClock()
    limiter = ConversationLimiter(clock=clock, sleep=clock.sleep)

    times = []
    for _ in range(20):
        limiter.acquire("conv-1")
        times.append(clock.now)

    assert max_in_any_window(times, 1.0) <= 7
    assert max_in_any_window(times, 2.0) <= 8
    assert times[:7] == [times[0]] * 7  # the first seven go at once


def test_conversation_limiter_keeps_60_per_30_seconds():
    clock = FakeClock()
    limiter = ConversationLimiter(clock=clock, sleep=clock.sleep)

    times = []
    for _ in range(130):
        limiter.acquire("conv-1")
        times.append(clock.now)

    assert max_in_any_window(times, 30.0) <= 60


def test_conversation_limiter_keeps_1800_per_hour():
    clock = FakeClock()
    limiter = ConversationLimiter(((1800, 3600.0),), margin=0.0, clock=clock, sleep=clock.sleep)

    times = []
    for _ in range(1801):
        limiter.acquire("conv-1")
        times.append(clock.now)

    assert times[-1] - times[0] >= 3600.0


def test_conversation_limiter_does_not_slow_another_conversation():
    clock = FakeClock()
    limiter = ConversationLimiter(clock=clock, sleep=clock.sleep)
    for _ in range(8):
        limiter.acquire("busy")
    now = clock.now

    waited = limiter.acquire("quiet")

    assert (waited, clock.now) == (0.0, now)


def test_conversation_limiter_forgets_idle_conversations():
    clock = FakeClock()
    limiter = ConversationLimiter(clock=clock, sleep=clock.sleep)
    for i in range(999):
        limiter.acquire(f"conv-{i}")
    clock.now += 3700  # longer than the longest window

    limiter.acquire("new")  # the 1000th call sweeps

    assert limiter.tracked() == 1


def test_conversation_limiter_memory_is_bounded_by_max_conversations():
    clock = FakeClock()
    limiter = ConversationLimiter(clock=clock, sleep=clock.sleep, max_conversations=50)

    for i in range(500):
        limiter.acquire(f"conv-{i}")

    assert limiter.tracked() == 50


def test_conversation_limiter_defaults_are_teams_limits():
    assert ConversationLimiter().limits == TEAMS_CONVERSATION_LIMITS == ((7, 1.0), (8, 2.0), (60, 30.0), (1800, 3600.0))
