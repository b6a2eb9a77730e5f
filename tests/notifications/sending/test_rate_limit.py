"""The process-wide token bucket: the rate holds, a burst is small, a 429 pauses everyone."""

from __future__ import annotations

import threading

import pytest

from shared_code.notifications.sending.rate_limit import TokenBucket
from tests.support.clocks import FakeClock


def test_a_full_bucket_gives_its_burst_without_waiting():
    clock = FakeClock()
    bucket = TokenBucket(100, burst=5, clock=clock, sleep=clock.sleep)

    waits = [bucket.acquire() for _ in range(5)]

    assert waits == [0.0] * 5


def test_past_the_burst_each_token_waits_one_rate_interval():
    clock = FakeClock()
    bucket = TokenBucket(10, burst=1, clock=clock, sleep=lambda s: None)
    bucket.acquire()

    waits = [bucket.acquire() for _ in range(3)]

    assert waits == pytest.approx([0.1, 0.2, 0.3])


def test_tokens_come_back_with_time_up_to_the_burst():
    clock = FakeClock()
    bucket = TokenBucket(10, burst=2, clock=clock, sleep=clock.sleep)
    bucket.acquire(), bucket.acquire()

    clock.now += 60  # a long idle time saves up no more than the burst

    assert [bucket.acquire() for _ in range(3)] == pytest.approx([0.0, 0.0, 0.1])


def test_hold_gives_no_token_until_the_pause_is_over():
    clock = FakeClock()
    bucket = TokenBucket(50, burst=5, clock=clock, sleep=lambda s: None)

    bucket.hold(2.0)

    assert bucket.acquire() == pytest.approx(2.0 + 1 / 50)


def test_a_shorter_hold_never_shortens_a_longer_one():
    clock = FakeClock()
    bucket = TokenBucket(10, burst=1, clock=clock, sleep=lambda s: None)

    bucket.hold(3.0)
    bucket.hold(1.0)

    assert bucket.acquire() >= 3.0


def test_threads_together_never_exceed_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(20, burst=1, clock=clock, sleep=lambda s: None)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(25):
            wait = bucket.acquire()
            with lock:
                waits.append(wait)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # 100 tokens at 20/s with a burst of 1: the last reservation is 99 intervals out.
    assert max(waits) == pytest.approx(99 / 20)
    assert sorted(round(w * 20) for w in waits) == list(range(100))
