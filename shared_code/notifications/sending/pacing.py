"""Pacing: when one send (or any connector call that counts like one) may go, across every instance.

Delivery, edits and recalls, and conversations created for a team's members all wait here, so one
tenant's budget covers everything the app asks of the channel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared_code.notifications.sending.rate_budget import DEFAULT_PAUSE, shared_budget, tenant_key
from shared_code.notifications.sending.rate_limit import process_limiter
from shared_code.plumbing import tracing
from shared_code.protocol.graph import CallKind
from shared_code.storage.addresses import Address

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices


class Pacer:
    """When a send may go: the instance's ceiling (SendRatePerSecond), then a slot of the tenant's budget
    shared by every instance (rate_budget), taken last so the send follows it at once. The conversation's
    own limits are the connector's (protocol.conversation_limits): every path to a conversation waits there."""

    def __init__(self, services: NotificationServices) -> None:
        settings = services.settings
        self._instance = process_limiter(settings.send_rate_per_second)
        self._budget = shared_budget(services.table_service, settings)
        self._scale = settings.retry_delay_scale

    def acquire(self, address: Address) -> None:
        self._instance.acquire()
        self._budget.acquire(tenant_of(address))

    def throttled(self, address: Address, retry_after: float | None) -> float:
        """The channel answered 429: the tenant pauses for every instance (and slows down); the seconds
        this sender waits before it tries again."""
        wait = (retry_after if retry_after is not None else DEFAULT_PAUSE) * self._scale
        self._budget.throttled(tenant_of(address), wait)
        tracing.add(tracing.THROTTLED, 1, {tracing.SOURCE: "channel", tracing.TENANT: tenant_of(address)})
        return wait


class GraphPacer:
    """When a Graph call may go: a slot of the tenant's budget for that kind of call (Graph's Teams limits are
    per kind, per app, per tenant), shared by every instance as the channel's is."""

    def __init__(self, services: NotificationServices) -> None:
        settings = services.settings
        self._budgets = {kind: shared_budget(services.table_service, settings, purpose=f"graph-{kind.value}",
                                             limit=settings.graph_rate_per_second) for kind in CallKind}
        self._scale = settings.retry_delay_scale

    def acquire(self, kind: CallKind, tenant: str) -> None:
        self._budgets[kind].acquire(tenant_key(tenant, ""))

    def throttled(self, kind: CallKind, tenant: str, retry_after: float | None, *, status: int = 429) -> float:
        """Graph answered 429 (or 503/504: `status`): every instance pauses that kind of call for the tenant; the
        seconds this caller waits."""
        wait = (retry_after if retry_after is not None else DEFAULT_PAUSE) * self._scale
        self._budgets[kind].throttled(tenant_key(tenant, ""), wait)
        if status == 429:
            tracing.add(tracing.THROTTLED, 1, {tracing.SOURCE: "graph", tracing.TENANT: tenant_key(tenant, "")})
        return wait


def tenant_of(address: Address) -> str:
    reference = address.reference
    return tenant_key(reference.tenant_id or reference.conversation.tenant_id, reference.service_url)


def pacer_for(services: NotificationServices) -> Pacer:
    return Pacer(services)
