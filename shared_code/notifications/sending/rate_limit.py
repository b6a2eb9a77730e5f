"""Rate limit: a thread-safe token bucket shared by every send in the process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; `acquire()` blocks until one is free.

    Waiting happens outside the lock, so a thread that must wait never holds up the others'
    bookkeeping; each caller reserves its slot in time and sleeps until it comes.
    """

    def __init__(self, rate: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        # A small burst: enough to keep a thread pool busy, too little to trip a per-second quota.
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._updated = clock()

    def acquire(self) -> float:
        """Take one token, sleeping if none is left; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0  # may go negative: that is this caller's reservation
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait

    def hold(self, seconds: float) -> None:
        """Give out no token for `seconds` from now (the channel said 429 with Retry-After: the
        per-app quota is spent for everyone in the process, not only for that one recipient)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens = min(self._tokens, -seconds * self.rate)


# One bucket per rate for the whole process (all page jobs an instance runs share the quota).
# A cache that is safe to lose: a new bucket starts full, which is at most one burst extra.
_buckets: dict[float, TokenBucket] = {}
_buckets_lock = threading.Lock()


def process_limiter(rate: float) -> TokenBucket:
    with _buckets_lock:
        bucket = _buckets.get(rate)
        if bucket is None:
            bucket = _buckets[rate] = TokenBucket(rate)
        return bucket
