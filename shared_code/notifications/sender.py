"""Sender: run one send per recipient over a bounded thread pool, under the process rate limit."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from shared_code.notifications.rate_limit import TokenBucket

T = TypeVar("T")
R = TypeVar("R")


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
    iterator = iter(items)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="send") as pool:
        try:
            # Submit lazily (never more than twice the pool) so a huge input is never all queued at once.
            for item in iterator:
                if stop is not None and stop.is_set():
                    break
                pending[pool.submit(send_one, item, take_token)] = item
                if len(pending) >= 2 * concurrency:
                    _collect(pending, results)
            while pending:
                _collect(pending, results)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results


def _collect(pending: dict[Future[R], T], results: list[tuple[T, R]]) -> None:
    done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
    for future in done:
        item = pending.pop(future)
        results.append((item, future.result()))


def _no_wait() -> None:
    return None
