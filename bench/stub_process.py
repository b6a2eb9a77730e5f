"""The connector stub in a process of its own, for benchmarks that time sends.

With the stub in the sender's process the two share one GIL, and the stub's own
request handling would be measured as much as the sender. The parent talks to the
child over a pipe: ask for the delivered count at any time, stop at the end.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any


def _serve(latency: float, tenant_limit: int | None, conn: Any) -> None:
    from stubs.connector import ChannelLimits, ConnectorStub

    limits = ChannelLimits(tenant_limit=tenant_limit) if tenant_limit else None
    with ConnectorStub(latency=latency, limits=limits) as stub:
        conn.send(stub.url)
        while True:
            command = conn.recv()
            if command == "stats":
                arrivals = sorted(t for times in stub.all_arrival_times().values() for t in times)
                conn.send({"arrivals": arrivals, "delivered": len(arrivals), "first": arrivals[0] if arrivals else 0.0,
                           "last": arrivals[-1] if arrivals else 0.0,
                           "throttled": limits.throttled_total() if limits else 0,
                           "max_in_any_second": max((limits.max_in_any_second(t) for t in limits.tenants()),
                                                    default=0) if limits else 0})
                continue
            conn.send(stub.total_delivered())
            if command == "stop":
                return


class StubProcess:
    """`with StubProcess(0.020) as stub:` serves at `stub.url`; `stub.delivered()` counts stored activities."""

    def __init__(self, latency: float, *, tenant_limit: int | None = None) -> None:
        ctx = mp.get_context("spawn")  # no fork: the parent may hold threads and sockets
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(latency, tenant_limit, child), daemon=True)
        self.url = ""

    def __enter__(self) -> StubProcess:
        self._process.start()
        self.url = self._conn.recv()
        return self

    def stats(self) -> dict:
        """Delivered count, first and last arrival (epoch seconds), 429s answered, most in any sliding second."""
        self._conn.send("stats")
        return self._conn.recv()

    def delivered(self) -> int:
        self._conn.send("count")
        return self._conn.recv()

    def wait_for(self, count: int, timeout: float, poll: float = 0.05) -> tuple[int, float]:
        """Poll until `count` deliveries or `timeout`; returns (delivered, monotonic time it was seen)."""
        deadline = time.monotonic() + timeout
        seen = self.delivered()
        while seen < count and time.monotonic() < deadline:
            time.sleep(poll)
            seen = self.delivered()
        return seen, time.monotonic()

    def __exit__(self, *exc: object) -> None:
        if self._process.is_alive():
            try:
                self._conn.send("stop")
                self._conn.recv()
            except (OSError, EOFError):
                pass
            self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
