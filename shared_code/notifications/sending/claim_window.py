"""The claim window: a page's recipients claimed, sent and recorded in rolling ledger transactions.

Two promises pull against each other here. The ledger must cost almost nothing per message, so
claims and outcomes are written many to a transaction. And a host that dies must leave no more
recipients in doubt (`outcome_unknown`: claimed, maybe sent, never recorded) than it has sends in
flight. The window keeps both: each transaction records the outcomes that came in and claims as
many new recipients as that frees, so the claimed-but-unrecorded never exceed `size` per tenant in
the whole process, and the senders never stop for the ledger.

Why rolling rather than chunk after chunk: a chunk's transaction could only start once its last
send had come back, so the senders stood idle for a send's latency and a transaction every chunk.
At the channel's limit those idle moments are budget slots that nobody takes (about a tenth of the
rate). Here a transaction starts once half the window is back (`threshold`), while the other half
is still sending, so at the limit there is always a sender waiting for the next slot.

Permits are per tenant (a page waiting for one tenant's budget never holds up another's) and
shared by every page job of the process; they and every window wait on one condition, so a
window wakes when its own sends come back and when another page gives permits back.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared_code.notifications.records.ledger import (
    MAX_CHUNK,
    Claim,
    ClaimOutcome,
    Delivery,
    Finish,
    RecipientKey,
    Step,
)
from shared_code.notifications.sending.sender import send_pool
from shared_code.plumbing import tracing

if TYPE_CHECKING:
    from shared_code.notifications.records.ledger import Ledger
    from shared_code.storage.addresses import Address

log = logging.getLogger(__name__)

# Every window and every tenant's permits of this process wait on this one condition.
_changed = threading.Condition()


@dataclass(frozen=True, slots=True)
class Recipient:
    """One recipient of a page: what the ledger knew of it before the page ran, its address, its tenant."""

    key: RecipientKey
    known: Delivery | None
    address: Address | None
    tenant: str
    step: Step = Step.SEND  # a fresh claim's first step: INSTALL for a person Graph must reach first


@dataclass(slots=True)
class WindowResult:
    recorded: list[Finish] = field(default_factory=list)  # sent or tried, outcome written
    unclaimed: list[tuple[RecipientKey, Claim]] = field(default_factory=list)  # DONE or BUSY: not ours to send
    stopped: list[RecipientKey] = field(default_factory=list)  # never claimed: the broadcast stopped first


Send = Callable[[Recipient, Delivery], Finish]


class Permits:
    """How many more recipients of one tenant this process may claim before it records some."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size  # read and changed with `_changed` held

    def take_up_to(self, count: int) -> int:
        taken = min(count, self.free)
        self.free -= taken
        return taken

    def give_back(self, count: int) -> None:
        self.free = min(self.size, self.free + count)


# One per window size and tenant for the whole process; safe to lose (a new one starts with every permit).
_permits: dict[tuple[int, str], Permits] = {}


def permits_for(size: int, tenant: str) -> Permits:
    with _changed:
        found = _permits.get((size, tenant))
        if found is None:
            found = _permits[(size, tenant)] = Permits(size)
        return found


def occupancy() -> dict[str, int]:
    """Recipients claimed and not yet recorded in this process, by tenant (the claim-window metric)."""
    held: dict[str, int] = {}
    with _changed:
        for (_, tenant), permits in _permits.items():
            held[tenant] = held.get(tenant, 0) + permits.size - permits.free
    return held


tracing.observe(tracing.CLAIM_WINDOW, lambda: [(count, {tracing.TENANT: tenant}) for tenant, count in occupancy().items()])


def window_size(send_concurrency: int) -> int:
    """Claimed-but-unrecorded recipients per tenant: the send concurrency, within one transaction's room."""
    return max(1, min(send_concurrency, MAX_CHUNK))


def run_window(recipients: list[Recipient], send: Send, *, ledger: Ledger, notification_id: str, page: str,
               concurrency: int, stop: threading.Event) -> WindowResult:
    """Claim, send (`send`, at most `concurrency` at once) and record every recipient, in the order given.

    `send` must turn a recipient's failure into its Finish; anything it raises anyway (a bug) ends
    the page once the sends in flight are back and recorded, and propagates, so the queue runs the
    page again. A ledger error propagates the same way. Once `stop` is set nobody more is claimed.
    """
    return _Window(recipients, send, ledger, notification_id, page, concurrency, stop).run()


class _Window:
    def __init__(self, recipients: list[Recipient], send: Send, ledger: Ledger, notification_id: str, page: str,
                 concurrency: int, stop: threading.Event) -> None:
        # Waiting recipients by tenant, tenants in the order they first appear: a tenant whose permits
        # other pages hold never keeps this page from claiming another tenant's.
        self.waiting: dict[str, deque[Recipient]] = {}
        for recipient in recipients:
            self.waiting.setdefault(recipient.tenant, deque()).append(recipient)
        self.send, self.ledger, self.stop = send, ledger, stop
        self.notification_id, self.page = notification_id, page
        self.concurrency = max(1, concurrency)
        self.size = window_size(concurrency)
        self.threshold = max(1, self.size // 2)
        self.in_flight = 0
        self.back: list[tuple[str, Finish]] = []  # sends that came back, not yet recorded (tenant, outcome)
        self.error: BaseException | None = None
        self.result = WindowResult()

    def run(self) -> WindowResult:
        try:
            while self._step():
                pass
        except BaseException:
            self._wind_down()
            raise
        return self.result

    def _step(self) -> bool:
        """One transaction: what came back recorded, as many new recipients claimed as that frees."""
        with _changed:
            _changed.wait_for(self._ready)
            if self.error is not None:
                raise self.error
            if self.stop.is_set() and self.waiting:
                self.result.stopped.extend(r.key for queue in self.waiting.values() for r in queue)
                self.waiting.clear()
            if not self.waiting and not self.in_flight and not self.back:
                return False
            back, self.back = self.back, []
            returning = Counter(tenant for tenant, _ in back)
            wanted, reused = self._take(returning)
        try:
            claims = self.ledger.settle(self.notification_id, self.page, [finish for _, finish in back],
                                        [(r.key, r.known) for r in wanted], {r.key: r.step for r in wanted if r.step})
        except BaseException:
            with _changed:  # not written: back where they were, for the wind-down to try again
                self.back[:0] = back
                if wanted:
                    permits_for(self.size, wanted[0].tenant).give_back(len(wanted) - reused)
                _changed.notify_all()
            raise
        self.result.recorded.extend(finish for _, finish in back)
        sendable: list[tuple[Recipient, Delivery]] = []
        with _changed:
            if wanted:
                returning[wanted[0].tenant] -= reused  # those permits went straight to the new claims
            for tenant, count in returning.items():
                permits_for(self.size, tenant).give_back(count)
            for recipient, claim in zip(wanted, claims, strict=True):
                if claim.outcome is ClaimOutcome.CLAIMED and claim.delivery is not None:
                    sendable.append((recipient, claim.delivery))
                else:
                    permits_for(self.size, recipient.tenant).give_back(1)
                    self.result.unclaimed.append((recipient.key, claim))
            self.in_flight += len(sendable)
            _changed.notify_all()
        pool = send_pool()  # the process's send threads: this window bounds its own sends (in_flight)
        for recipient, delivery in sendable:
            pool.submit(self.send, recipient, delivery).add_done_callback(
                lambda future, tenant=recipient.tenant: self._came_back(tenant, future))
        return True

    def _ready(self) -> bool:
        """Worth a transaction now (called with `_changed` held)."""
        if self.error is not None or (self.stop.is_set() and self.waiting):
            return True
        if not self.in_flight and (self.back or not self.waiting):
            return True
        if len(self.back) >= self.threshold:
            return True
        # Claim once a worthwhile batch of permits is free (other pages hold the rest, or gave some
        # back), not one transaction per permit.
        return self._next_tenant(Counter()) is not None

    def _run(self, tenant: str) -> int:
        """How many of the tenant's recipients one transaction may claim (a transaction claims one
        tenant's): no more than the page's idle senders (a page of several tenants has one tenant's
        sends still in flight while it claims the next's)."""
        return min(len(self.waiting[tenant]), self.size, self.concurrency - self.in_flight)

    def _next_tenant(self, returning: Counter[str]) -> str | None:
        """The first tenant with a worthwhile batch to claim: free permits, and those of its outcomes
        recorded in the same transaction (called with `_changed` held)."""
        for tenant in self.waiting:
            run = self._run(tenant)
            if run > 0 and permits_for(self.size, tenant).free + returning[tenant] >= min(self.threshold, run):
                return tenant
        return None

    def _take(self, returning: Counter[str]) -> tuple[list[Recipient], int]:
        """Recipients of one tenant to claim (called with `_changed` held), and how many of them take
        the permits of the outcomes recorded in the same transaction: the transaction writes both at
        once, or neither, so the window never holds more than its size."""
        tenant = self._next_tenant(returning)
        if tenant is None:
            return [], 0
        run = self._run(tenant)
        reused = min(run, returning[tenant])
        count = reused + permits_for(self.size, tenant).take_up_to(run - reused)
        queue = self.waiting[tenant]
        taken = [queue.popleft() for _ in range(count)]
        if not queue:
            del self.waiting[tenant]
        return taken, reused

    def _came_back(self, tenant: str, future: Future[Finish]) -> None:
        with _changed:
            self.in_flight -= 1
            error = future.exception()
            if error is not None:
                self.error = self.error or error
                permits_for(self.size, tenant).give_back(1)  # never recorded: in doubt, as a dead host's
            else:
                self.back.append((tenant, future.result()))
            _changed.notify_all()

    def _wind_down(self) -> None:
        """The page is failing: let the sends in flight come back, record them if the table lets us, and
        give every permit back."""
        with _changed:
            _changed.wait_for(lambda: not self.in_flight)
            back, self.back = self.back, []
        if back:
            try:
                self.ledger.settle(self.notification_id, self.page, [finish for _, finish in back])
                self.result.recorded.extend(finish for _, finish in back)
            except Exception:  # the table is what failed: these stay claimed, in doubt, until their lease ends
                log.warning("page %s of %s: %d outcomes not recorded", self.page, self.notification_id, len(back))
        with _changed:
            for tenant, count in Counter(tenant for tenant, _ in back).items():
                permits_for(self.size, tenant).give_back(count)
            _changed.notify_all()
