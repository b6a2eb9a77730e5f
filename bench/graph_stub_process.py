"""The Graph stub (stubs/graph.py) in a process of its own, with an organisation already in it.

As with the connector (bench/stub_process.py): the stub answers at Graph's documented limits, and
the bench's process must not be what limits the rate. The directory is made in the child: `people`
users, all in one group, and the bot's app in the org catalog. Installs post their conversationUpdate
to wherever `deliver_to` says (a dev host's /api/messages, local mode: unsigned), from the moment it
is said; the app's settings need the stub's URL before any host starts, so the host comes second.
"""

from __future__ import annotations

import time
from typing import Any

from bench.stub_process import ChildProcess, answer


def _serve(service_url: str, people: int, group: str, app_id: str, limited: bool, conn: Any) -> None:
    from stubs.graph import TENANT_LIMITS, CallKind, Delivery, GraphFault, GraphLimits, GraphStub

    class Timed(GraphLimits):
        """Graph's limits (or none), and when each call was admitted or refused: (epoch seconds, kind, admitted)."""

        def __init__(self) -> None:
            super().__init__(None if limited else {}, None if limited else {})
            self.log: list[tuple[float, str, bool]] = []

        def admit(self, tenant: str, kind: CallKind) -> GraphFault | None:
            fault = super().admit(tenant, kind)
            self.log.append((time.time(), kind.value, fault is None))
            return fault

    limits = Timed()
    stub = GraphStub(limits=limits, service_url=service_url, delivery=Delivery.IMMEDIATE)

    def deliver_to(url: str) -> None:
        stub.bot_url = url

    def counters() -> dict:
        """Calls (429s included) and 429s by kind, the most accepted in one window by kind, installs,
        and the conversationUpdates: posted, and any the bot did not take (status, error)."""
        counted = stub.counters()
        posted = stub.conversation_updates
        return {"calls": {k.value: n for k, n in counted.calls.items()},
                "throttled": {k.value: n for k, n in counted.throttled.items() if n},
                "most_in_window": {k.value: stub.limits.max_in_window(k, stub.tenant_id) for k in TENANT_LIMITS},
                "installs": counted.installs, "updates_posted": len(posted),
                "updates_refused": [(p.status, p.error) for p in posted if not p.delivered][:5],
                "updates_refused_count": sum(1 for p in posted if not p.delivered)}

    with stub:
        catalog_id = stub.register_app(app_id)
        stub.add_users(people, prefix="person", group=group)
        answer(conn, {"base_url": stub.base_url, "catalog_id": catalog_id, "tenant_id": stub.tenant_id},
               {"deliver_to": deliver_to, "counters": counters, "timeline": lambda: list(limits.log)})


class GraphStubProcess(ChildProcess):
    """`with GraphStubProcess(connector_url, 2000, group_id, app_id) as graph:` Graph at `graph.base_url`,
    with `people` users in `group` (stubs.graph.aad_id names) and the app published as `graph.catalog_id`;
    `limited=False` answers every call (no 429), to see what the app does when Graph is not what waits."""

    def __init__(self, service_url: str, people: int, group: str, app_id: str, *, limited: bool = True) -> None:
        super().__init__(_serve, service_url, people, group, app_id, limited)

    @property
    def base_url(self) -> str:
        return self.ready["base_url"]

    @property
    def catalog_id(self) -> str:
        return self.ready["catalog_id"]

    @property
    def tenant_id(self) -> str:
        return self.ready["tenant_id"]

    def deliver_to(self, bot_url: str) -> None:
        """Post each install's conversationUpdate to `bot_url` from now on."""
        self.ask("deliver_to", bot_url)

    def counters(self) -> dict:
        return self.ask("counters")

    def timeline(self) -> list[tuple[float, str, bool]]:
        """Every call that reached the limits: (epoch seconds, kind, admitted), in order."""
        return self.ask("timeline")
