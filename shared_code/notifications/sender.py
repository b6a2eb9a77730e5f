"""Sender: run one send per recipient over a bounded thread pool, under the process rate limit."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from shared_code.notifications.rate_limit import TokenBucket

T = TypeVar("T")
R = TypeVar("R")

# Every send_all (and claim window) of the process runs on one pool of threads that outlive the call: a pool made per call
# (a page job calls once per chunk of SendConcurrency) cost a thread start per send, 8 % of the host's
# CPU in figure 2. Each call still runs at most its own `concurrency` at once (it submits no more), and
# the cap is far above what calls ask for together, so no call waits for another's threads; threads
# are made only when none is idle, so the pool holds the peak of sends in flight, not the cap.
MAX_THREADS = 4096
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def send_pool() -> ThreadPoolExecutor:
    """The process's send threads (callers bound their own concurrency)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="send")
        return _pool


def send_all(
    items: Iterable[T],
    send_one: Callable[[T, Callable[[], None]], R],
    *,
    concurrency: int,
    limiter: TokenBucket | None = None,
    stop: threading.Event | None = None,
) -> list[tuple[T, R]]:
    """Call `send_one(item, take_token)` for each item, at most `concurrency` at a time.

    `send_one` calls `take_token()` right before its network send, so time spent on
    storage (claims, lookups) does not burn rate-limit tokens. It must turn an item's
    failure into a result: one recipient's failure never fails the others. Anything it
    raises anyway (a bug, a dying host) stops the page: items not yet started are
    cancelled and the error propagates, so the queue retries the page.
    When `stop` is set, items not yet started are skipped (absent from the result).
    """
    take_token = limiter.acquire if limiter is not None else _no_wait
    results: list[tuple[T, R]] = []
    pending: dict[Future[R], T] = {}
    pool = send_pool()
    concurrency = max(1, concurrency)
    try:
        # Submit lazily, never more than `concurrency` at once: the shared pool does not bound this call.
        for item in items:
            if stop is not None and stop.is_set():
                break
            pending[pool.submit(send_one, item, take_token)] = item
            if len(pending) >= concurrency:
                _collect(pending, results)
        while pending:
            _collect(pending, results)
    except BaseException:
        for future in pending:
            future.cancel()  # not started yet: never will
        wait(list(pending))  # the started ones finish, as before a pool of its own was shut down
        raise
    return results


def _collect(pending: dict[Future[R], T], results: list[tuple[T, R]]) -> None:
    done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
    for future in done:
        item = pending.pop(future)
        results.append((item, future.result()))


def _no_wait() -> None:
    return None
