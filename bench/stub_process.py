"""Stubs in processes of their own, for benchmarks that time what the app sends them.

With a stub in the sender's process the two share one GIL, and the stub's own request
handling would be measured as much as the sender. `ChildProcess` runs a stub's `serve`
function in a spawned process and talks to it over a pipe: the child first sends what the
parent needs to reach it (its URL), then answers named commands until "stop". `StubProcess`
is the connector stub served so; bench/graph_stub_process.py is the Graph stub.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable, Mapping
from typing import Any, Self

# In the child: a command's name -> what answers it (its return value goes back over the pipe).
Commands = Mapping[str, Callable[..., Any]]


def answer(conn: Any, ready: Any, commands: Commands) -> None:
    """The child's side: send `ready`, then answer each `(command, args)` until "stop". A command that
    raises answers with the error, so the parent sees it instead of waiting for ever."""
    conn.send(ready)
    while True:
        command, args = conn.recv()
        if command == "stop":
            conn.send((True, None))
            return
        try:
            conn.send((True, commands[command](*args)))
        except Exception as exc:  # reported to the parent, which raises it there
            conn.send((False, f"{type(exc).__name__}: {exc}"))


class ChildProcess:
    """`serve(*args, conn)` in a spawned process; `ready` is what it sent first, `ask(command, *args)` its answer."""

    def __init__(self, serve: Callable[..., None], *args: Any) -> None:
        ctx = mp.get_context("spawn")  # no fork: the parent may hold threads and sockets
        self._conn, self._child = ctx.Pipe()
        self._process = ctx.Process(target=serve, args=(*args, self._child), daemon=True)
        self.ready: Any = None

    def __enter__(self) -> Self:
        self._process.start()
        self._child.close()  # the child has its own end: a child that dies is an EOFError here, not a hang
        self.ready = self._conn.recv()
        return self

    def ask(self, command: str, *args: Any) -> Any:
        self._conn.send((command, args))
        ok, value = self._conn.recv()
        if not ok:
            raise RuntimeError(f"{command!r} in the stub's process: {value}")
        return value

    def __exit__(self, *exc: object) -> None:
        if self._process.is_alive():
            try:
                self.ask("stop")
            except (OSError, EOFError):
                pass
            self._process.join(5)
        if self._process.is_alive():
            self._process.kill()


def _serve(latency: float, tenant_limit: int | None, conn: Any) -> None:
    from stubs.connector import ChannelLimits, ConnectorStub

    limits = ChannelLimits(tenant_limit=tenant_limit) if tenant_limit else None

    def stats() -> dict:
        arrivals = sorted(t for times in stub.all_arrival_times().values() for t in times)
        return {"arrivals": arrivals, "delivered": len(arrivals), "first": arrivals[0] if arrivals else 0.0,
                "last": arrivals[-1] if arrivals else 0.0,
                "throttled": limits.throttled_total() if limits else 0,
                "max_in_any_second": max((limits.max_in_any_second(t) for t in limits.tenants()),
                                         default=0) if limits else 0}

    def messages() -> list[tuple[str, str, float]]:
        activities, arrivals = stub.all_activities(), stub.all_arrival_times()
        return [(conversation, str(activity.get("text", "")), at)
                for conversation, stored in activities.items()
                for activity, at in zip(stored, arrivals.get(conversation, ()), strict=False)]

    with ConnectorStub(latency=latency, limits=limits) as stub:
        answer(conn, stub.url, {"stats": stats, "count": stub.total_delivered, "messages": messages})


class StubProcess(ChildProcess):
    """`with StubProcess(0.020) as stub:` serves at `stub.url`; `stub.delivered()` counts stored activities."""

    def __init__(self, latency: float, *, tenant_limit: int | None = None) -> None:
        super().__init__(_serve, latency, tenant_limit)

    @property
    def url(self) -> str:
        return self.ready or ""

    def stats(self) -> dict:
        """Delivered count, first and last arrival (epoch seconds), 429s answered, most in any sliding second."""
        return self.ask("stats")

    def messages(self) -> list[tuple[str, str, float]]:
        """Every stored activity: (conversation id, text, arrival in epoch seconds)."""
        return self.ask("messages")

    def delivered(self) -> int:
        return self.ask("count")

    def wait_for(self, count: int, timeout: float, poll: float = 0.05) -> tuple[int, float]:
        """Poll until `count` deliveries or `timeout`; returns (delivered, monotonic time it was seen)."""
        deadline = time.monotonic() + timeout
        seen = self.delivered()
        while seen < count and time.monotonic() < deadline:
            time.sleep(poll)
            seen = self.delivered()
        return seen, time.monotonic()
