"""Delivery of one page job: each recipient claimed in the ledger, sent, recorded; retries re-queued.

A page job is a batch (powertools' shape): one recipient's failure becomes that
recipient's outcome and never fails the others. Only what a retry of the whole page
can fix (storage unreachable, a dying host) propagates, and the queue runs it again;
the ledger makes that second run skip whatever the first one finished.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from shared_code.conversation.proactive import send_localized
from shared_code.notifications import jobs, roster
from shared_code.notifications.fanout import PageJob, check_page_job
from shared_code.notifications.jobs import JobKind, TargetKind
from shared_code.notifications.ledger import (
    MAX_CHUNK,
    Claim,
    ClaimOutcome,
    Delivery,
    DeliveryState,
    Finish,
    RecipientKey,
)
from shared_code.notifications.pacing import Pacer, pacer_for, tenant_of
from shared_code.notifications.sender import send_all
from shared_code.notifications.store import Notification, NotificationState, PageCounts, counts_of
from shared_code.plumbing.errors import AppError, AppRejected, NotFound, RecipientGone, Throttled, Upstream
from shared_code.storage.addresses import Address

if TYPE_CHECKING:  # the composition root sits above every package: named in annotations only
    from shared_code.app.services import Services

log = logging.getLogger(__name__)



class Outcome(StrEnum):
    SENT = "sent"
    ALREADY = "already"  # finished by an earlier run or another host
    RETRY = "retry"  # transient failure: goes back to the queue
    BUSY = "busy"  # another host holds a live claim: look again later
    FAILED = "failed"
    GONE = "gone"
    INACTIVE = "inactive"
    STOPPED = "stopped"  # the broadcast was stopped before this one was tried
    CANCELLED = "cancelled"  # the caller cancelled the notification before this one's turn


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    wait: float = 0.0  # seconds before a retry makes sense
    code: str = ""


# A hook for tests and benchmarks: called after a successful send, before it is recorded
# (where a host that dies leaves a claim whose outcome is unknown).
AfterSend = Callable[[RecipientKey], None]


def run_page(job: PageJob, services: Services, *, after_send: AfterSend | None = None) -> dict[Outcome, int]:
    """Send one page job; re-queue what failed transiently; refresh the page's counts.

    Table operations per page: the notification, the ledger partition, the page's addresses
    (a range query per channel), then one transaction per chunk of `SendConcurrency`
    recipients (that chunk's claims and the previous chunk's outcomes together), and the
    counts. A host that dies mid-page leaves at most one chunk, the sends in flight, as
    `outcome_unknown`.
    """
    store, ledger, settings = services.notifications, services.ledger, services.settings
    notification = store.get(job.notification)
    if notification is None:
        raise NotFound(f"no notification {job.notification!r}")
    if notification.stopped:
        log.info("notification %s is %s: page %s not sent", job.notification, notification.state, job.page)
        if notification.state is NotificationState.CANCELLED:
            return _record_cancelled(job, services)
        return {}
    page_record = check_page_job(job, store)
    known = ledger.page(job.notification, job.page)
    members = _team_members(notification, job, services)  # None unless the audience is a team
    addresses = _addresses_of(job, members, services)
    tally: dict[Outcome, int] = {}
    results: list[tuple[RecipientKey, Result]] = []
    todo: list[tuple[RecipientKey, Delivery | None, Address | None]] = []
    skips: list[tuple[RecipientKey, DeliveryState, str]] = []
    for key in job.keys:
        record = known.get(key)
        if record is not None and record.state not in (DeliveryState.RETRY, DeliveryState.IN_PROGRESS):
            results.append((key, Result(Outcome.ALREADY)))
            continue
        if record is None and not key.well_formed:
            # Saved before the edges checked ids (a lone surrogate, say): no URL can name it. It fails
            # alone, with its code; the rest of the page goes on.
            skips.append((key, DeliveryState.FAILED, "invalid_address"))
            results.append((key, Result(Outcome.FAILED, code="invalid_address")))
            continue
        address = addresses.get((key.channel_id, key.conversation_id))
        # A team member without a personal chat is not skipped: the chat is created at their turn.
        unknown = address is None and members is None
        if (unknown or (address is not None and not address.active)) and record is None:
            reason = "address_unknown" if address is None else (address.inactive_reason or "address_inactive")
            skips.append((key, DeliveryState.INACTIVE, reason))
            results.append((key, Result(Outcome.INACTIVE, code=reason)))
            continue
        todo.append((key, record, address))
    ledger.record_skips(job.notification, job.page, skips)

    stop = threading.Event()
    stop_reason: list[str] = []
    activity_fields = _content(notification)
    pacer = pacer_for(services)

    def send_one(item: tuple[RecipientKey, Delivery, Address | None], take_token: Callable[[], None]) -> Finish:
        key, claimed, address = item
        try:
            return _deliver(claimed, address, notification, services, activity_fields, pacer, after_send,
                            members=members)
        except AppRejected as rejected:
            stop_reason.append(f"{rejected.code}: {rejected.message}")
            stop.set()
            # Not this recipient's fault: leave it claimable, in case an operator restarts the broadcast.
            return Finish(claimed, DeliveryState.RETRY, "stopped", "the broadcast was stopped")

    # Claimed but not yet recorded, across every page job of this process: at most SendConcurrency per
    # tenant. That is what a process that dies leaves in doubt (outcome_unknown), whatever its host runs
    # at once. Per tenant, so that page jobs waiting for one tenant's budget never hold up another's.
    finishes: list[Finish] = []
    held: tuple[Permits, int] | None = None  # the permits of `finishes`
    taken: tuple[Permits, int] | None = None  # acquired for a chunk not yet claimed

    def record(more: list[tuple[RecipientKey, Delivery | None]]) -> list[Claim]:
        """Write `finishes` (and claim `more`) in one transaction; the permits of what was written go back."""
        nonlocal finishes, held
        claims = ledger.settle(job.notification, job.page, finishes, more)
        results.extend((finish.claimed.key, _result(finish)) for finish in finishes)
        finishes = []
        if held is not None:
            held[0].release(held[1])
            held = None
        return claims

    try:
        for tenant, chunk in _chunks_by_tenant(todo, max(1, min(settings.send_concurrency, MAX_CHUNK))):
            if stop.is_set():
                results.extend((key, Result(Outcome.STOPPED)) for key, _, _ in chunk)
                continue
            permits = in_flight_permits(settings.send_concurrency, tenant)
            if not permits.try_acquire(len(chunk)):
                if held is not None:  # other page jobs are sending: give back ours before waiting
                    record([])
                permits.acquire(len(chunk))
            taken = (permits, len(chunk))
            claims = record([(key, known_record) for key, known_record, _ in chunk])
            held, taken = taken, None
            sendable = []
            for (key, _, address), claim in zip(chunk, claims, strict=True):
                if claim.outcome is ClaimOutcome.DONE:
                    results.append((key, Result(Outcome.ALREADY)))
                elif claim.outcome is ClaimOutcome.BUSY:
                    results.append((key, Result(Outcome.BUSY, wait=claim.wait)))
                else:
                    assert claim.delivery is not None
                    sendable.append((key, claim.delivery, address))
            finishes = [finish for _, finish in send_all(sendable, send_one, concurrency=settings.send_concurrency)]
        if finishes or held is not None:
            record([])
    finally:
        for permits_held in (held, taken):
            if permits_held is not None:
                permits_held[0].release(permits_held[1])

    if stop_reason:
        store.stop(job.notification, NotificationState.STOPPED, stop_reason[0])
    for _, result in results:
        tally[result.outcome] = tally.get(result.outcome, 0) + 1
    again = [(key, r) for key, r in results if r.outcome in (Outcome.RETRY, Outcome.BUSY)]
    if again and not stop_reason:
        delay = max(_delay(r, job.attempt, settings.retry_delay_scale) for _, r in again)
        retry = PageJob(job.notification, job.page, tuple(k for k, _ in again), job.attempt + 1)
        jobs.enqueue(retry.to_json(), services, delay_seconds=delay)
    store.save_counts(job.notification, job.page, lambda: page_counts(services, job.notification, job.page),
                      read=page_record)
    log.info("notification %s page %s attempt %d: %s", job.notification, job.page, job.attempt,
             {k.value: v for k, v in tally.items()})
    return tally


def _team_members(notification: Notification, job: PageJob, services: Services) -> roster.TeamMembers | None:
    if notification.job.target.kind is not TargetKind.TEAM:
        return None
    return roster.team_members(notification.job.target.value, (k.conversation_id for k in job.keys), services)


def _addresses_of(job: PageJob, members: roster.TeamMembers | None,
                  services: Services) -> dict[tuple[str, str], Address]:
    """The page's addresses by recipient key: saved conversations, or a team's members' personal chats."""
    if members is None:
        return services.addresses.get_many((k.channel_id, k.conversation_id) for k in job.keys if k.well_formed)
    found = ((k, members.address(k.conversation_id)) for k in job.keys)
    return {(k.channel_id, k.conversation_id): address for k, address in found if address is not None}


def page_counts(services: Services, notification_id: str, page: str) -> PageCounts:
    """A page's counts, from its ledger partition (at most a page of records)."""
    return counts_of(services.ledger.page(notification_id, page).values())


def _record_cancelled(job: PageJob, services: Services) -> dict[Outcome, int]:
    """Count the page's unsent recipients as cancelled, so the status adds up to the audience."""
    ledger = services.ledger
    known = ledger.page(job.notification, job.page)
    fresh = [(key, DeliveryState.CANCELLED, "cancelled") for key in job.keys if key not in known]
    ledger.record_skips(job.notification, job.page, fresh)
    waiting = [d for d in known.values() if d.key in job.keys and d.state is DeliveryState.RETRY]
    for record in waiting:  # a retried page: its transient failures will never be tried again
        claim = ledger.claim(job.notification, job.page, record.key, record)
        if claim.outcome is ClaimOutcome.CLAIMED and claim.delivery is not None:
            ledger.finish(job.notification, job.page, claim.delivery, DeliveryState.CANCELLED, "cancelled")
    services.notifications.save_counts(job.notification, job.page,
                                       lambda: page_counts(services, job.notification, job.page))
    return {Outcome.CANCELLED: len(fresh) + len(waiting)}


def _content(notification: Notification) -> dict[str, Any]:
    job = notification.job
    localized = job.localized() if job.kind is JobKind.MESSAGE else None
    return {"kind": job.kind, "localized": localized, "locale": job.locale, "dialog": job.dialog, "id": job.id,
            "version": notification.version}


class Permits:
    """A counting semaphore that takes and gives back several at once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = size
        self._changed = threading.Condition()

    def try_acquire(self, count: int) -> bool:
        with self._changed:
            if self._free >= count:
                self._free -= count
                return True
            return False

    def acquire(self, count: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._free >= count)
            self._free -= count

    def release(self, count: int) -> None:
        if count:
            with self._changed:
                self._free = min(self.size, self._free + count)
                self._changed.notify_all()


# One per SendConcurrency value and tenant for the whole process; safe to lose (a new one starts empty-handed).
_permits: dict[tuple[int, str], Permits] = {}
_permits_lock = threading.Lock()


def in_flight_permits(size: int, tenant: str) -> Permits:
    with _permits_lock:
        found = _permits.get((size, tenant))
        if found is None:
            found = _permits[(size, tenant)] = Permits(size)
        return found


Todo = tuple[RecipientKey, Delivery | None, Address | None]


def _chunks_by_tenant(todo: list[Todo], size: int) -> list[tuple[str, list[Todo]]]:
    """The page's recipients in chunks of one tenant each, tenants in the order they first appear."""
    groups: dict[str, list[Todo]] = {}
    for item in todo:
        groups.setdefault(tenant_of(item[2]) if item[2] is not None else "", []).append(item)
    return [(tenant, items[start:start + size]) for tenant, items in groups.items()
            for start in range(0, len(items), size)]


def _result(finish: Finish) -> Result:
    outcome = _OUTCOME_OF[finish.state]
    if finish.state is DeliveryState.RETRY:
        return Result(outcome, wait=finish.retry_after, code=finish.code)
    return Result(outcome, code=finish.code)


def _deliver(claimed: Delivery, address: Address | None, notification: Notification, services: Services,
             content: dict[str, Any], pacer: Pacer, after_send: AfterSend | None, *,
             members: roster.TeamMembers | None = None) -> Finish:
    """Send to one claimed recipient; its outcome, for the ledger. Raises AppRejected (stop everything).
    A team member without a personal chat (`members` given, `address` None) gets one created first, paced
    as a send and within the same claim (one attempt: a failed creation is retried as a failed send is)."""
    settings = services.settings
    # A retried recipient whose address went away meanwhile.
    if (address is None and members is None) or (address is not None and not address.active):
        return Finish(claimed, DeliveryState.INACTIVE, "address_unknown" if address is None else "address_inactive")
    # A throttled try is retried here, uncounted, for a while; past a third of the lease (so no
    # other host mistakes the claim for a dead one), the recipient goes back to the queue, still uncounted.
    deadline = claimed.claimed_at + settings.delivery_lease_seconds / 3
    activity_id = ""  # a dialog's first prompt: the dialog's, not the notification's to edit
    while True:
        paced = address if address is not None else members.pacing_address(claimed.key.conversation_id)
        pacer.acquire(paced)
        try:
            if address is None:  # a team member's first chat with the bot; saved, so created only once
                address = members.create(claimed.key.conversation_id, services)
                continue  # the send waits for its own turn
            if content["kind"] is JobKind.MESSAGE:
                # Each recipient gets the content for its own locale.
                activity_id = send_localized(address, content["localized"], services, locale=content["locale"],
                                             retries=0)
            else:
                from shared_code.conversation.dialogs import begin_dialog

                if not begin_dialog(address, content["dialog"], content["id"], services):
                    # Already in that dialog (e.g. a survey started by hand): not interrupted twice.
                    return Finish(claimed, DeliveryState.INACTIVE, "already_in_dialog",
                                  "the conversation is already in this dialog")
        except Throttled as throttled:
            if throttled.status != 429:  # 503: the service is unwell, a 5xx that counts as an attempt
                if claimed.attempts >= settings.send_max_attempts:
                    return Finish(claimed, DeliveryState.FAILED, "unavailable",
                                  f"gave up after {claimed.attempts} attempts: {throttled.message}")
                return Finish(claimed, DeliveryState.RETRY, "unavailable", throttled.message,
                              retry_after=-1.0 if throttled.retry_after is None else throttled.retry_after)
            wait = pacer.throttled(paced, throttled.retry_after)
            if time.time() + wait < deadline:
                continue  # uncounted; the budget holds every sender to this tenant until the pause is over
            return Finish(claimed, DeliveryState.RETRY, throttled.code, throttled.message, counted=False,
                          retry_after=wait)
        except Upstream as error:
            if not error.transient:
                return Finish(claimed, DeliveryState.FAILED, error.code, error.message)
            if claimed.attempts >= settings.send_max_attempts:
                return Finish(claimed, DeliveryState.FAILED, error.code,
                              f"gave up after {claimed.attempts} attempts: {error.message}")
            return Finish(claimed, DeliveryState.RETRY, error.code, error.message)
        except RecipientGone as gone:  # the address was marked inactive where the send failed
            return Finish(claimed, DeliveryState.GONE, gone.code, gone.message)
        except AppRejected:
            raise
        except AppError as error:  # BadInput (400/413 from the channel) and the like: a retry cannot fix it
            return Finish(claimed, DeliveryState.FAILED, error.code, error.message)
        if after_send is not None:
            after_send(claimed.key)
        return Finish(claimed, DeliveryState.SENT, activity_id=activity_id, content_version=content["version"])


_OUTCOME_OF = {
    DeliveryState.SENT: Outcome.SENT, DeliveryState.RETRY: Outcome.RETRY, DeliveryState.FAILED: Outcome.FAILED,
    DeliveryState.GONE: Outcome.GONE, DeliveryState.INACTIVE: Outcome.INACTIVE,
    DeliveryState.CANCELLED: Outcome.CANCELLED, DeliveryState.IN_PROGRESS: Outcome.BUSY,
}


def _delay(result: Result, attempt: int, scale: float) -> float:
    if result.outcome is Outcome.BUSY:
        return math.ceil(result.wait)  # the lease is already a setting: not scaled
    if result.code == "throttled" and result.wait >= 0:
        return math.ceil(result.wait)  # already scaled by the pacer
    base = result.wait if result.wait >= 0 else min(60.0, 2.0 ** attempt) * (0.5 + random.random() / 2)
    return math.ceil(base * scale) if base * scale > 0 else 0
