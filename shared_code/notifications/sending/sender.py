"""The process's send threads: one pool that every page's claim window submits its sends to."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

# One pool of threads that outlive each page: a pool made per page (or per chunk, before the claim window)
# cost a thread start per send, 8 % of the host's CPU in figure 2. Each caller bounds its own sends in
# flight (it submits no more than its concurrency), and the cap is far above what callers ask for
# together, so none waits for another's threads; threads are made only when none is idle, so the pool
# holds the peak of sends in flight, not the cap.
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
