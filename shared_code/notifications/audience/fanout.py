"""Fan-out: a broadcast becomes a chain of scan jobs, each freezing one page and queueing its page job.

Internal job kinds (same envelope as the public ones, `"v": 1`):

    {"v": 1, "kind": "scan", "notification": "<id>", "index": 3, "continuation": {...} | null}
    {"v": 1, "kind": "page", "notification": "<id>", "page": "000003",
     "keys": [["<channel id>", "<conversation id>"], ...], "attempt": 1}

For a team (`"to": {"team": id}`) a page is a page of the team's roster (pagedmembers, its
continuation token kept as `{"roster": token}`), and a key is a member, [channel id, member id]:
the page job reaches each member in their personal chat, created when they have none. For the
organisation (`group`, `users`, `tenant`), a page is a page of Microsoft Graph's answer (`{"graph":
nextLink}`) or of a stored list (`{"people": index}`), and a key is a person, ["msteams", object id]
(audience/organisation.py).

A scan job reads one page of addresses (AddressStore.page_active and its continuation
token: never the whole table), freezes it as the page's summary record (conditional
insert: a retried scan gets the same recipients back, so pages never overlap), then
enqueues that page's job and the next scan job. The content lives in the notification,
not in page jobs, so a page job can only ever repeat a notification that exists.

A notification with a future `notBefore` is `scheduled`: its first scan waits on the queue
(a delayed message) or, beyond the queue's 7 days, in the table for the timer (scheduling.py).
A cancelled notification keeps scanning (cheap: a query per page) so that its page jobs can
record every recipient as cancelled, and the status counts add up to the audience.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from shared_code.notifications import jobs
from shared_code.notifications.audience import member_index, organisation, roster
from shared_code.notifications.jobs import Job, TargetKind
from shared_code.notifications.records.catalogue import Actor, summary_of
from shared_code.notifications.records.ledger import DeliveryState, RecipientKey
from shared_code.notifications.records.store import (
    Notification,
    NotificationState,
    NotificationStore,
    PageRecord,
    counts_of,
)
from shared_code.plumbing import tracing
from shared_code.plumbing.errors import BadInput, NotFound, RecipientGone
from shared_code.storage import queues

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices

log = logging.getLogger(__name__)

MAX_JOB_BYTES = queues.MAX_QUEUE_MESSAGE_BYTES * 3 // 4  # base64 adds a third
# A queue message stays invisible at most 7 days and lives 7 days by default: keep an hour's margin.
MAX_QUEUE_DELAY = 7 * 24 * 3600 - 3600


class InternalKind(StrEnum):
    SCAN = "scan"
    PAGE = "page"


@dataclass(frozen=True, slots=True)
class ScanJob:
    notification: str
    index: int = 0
    continuation: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"v": jobs.VERSION, "kind": InternalKind.SCAN.value, "notification": self.notification,
                "index": self.index, "continuation": self.continuation}


@dataclass(frozen=True, slots=True)
class PageJob:
    notification: str
    page: str
    keys: tuple[RecipientKey, ...]
    attempt: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"v": jobs.VERSION, "kind": InternalKind.PAGE.value, "notification": self.notification,
                "page": self.page, "keys": [k.to_json() for k in self.keys], "attempt": self.attempt}


def is_internal(data: Any) -> bool:
    return isinstance(data, dict) and data.get("kind") in {k.value for k in InternalKind}


def parse_internal(data: dict[str, Any]) -> ScanJob | PageJob:
    """Validate a scan or page job; BadInput says what is wrong (the message goes to poison)."""
    if data.get("v") != jobs.VERSION:
        raise BadInput(f"unknown job version {data.get('v')!r}; this app reads version {jobs.VERSION}")
    notification = data.get("notification")
    if not isinstance(notification, str) or not notification:
        raise BadInput("notification is required")
    if data["kind"] == InternalKind.SCAN.value:
        index, continuation = data.get("index"), data.get("continuation")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise BadInput("index must be a non-negative integer")
        if continuation is not None and not isinstance(continuation, dict):
            raise BadInput("continuation must be an object or null")
        return ScanJob(notification, index, continuation)
    page, attempt, raw_keys = data.get("page"), data.get("attempt", 1), data.get("keys")
    if not isinstance(page, str) or not page:
        raise BadInput("page is required")
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise BadInput("attempt must be a positive integer")
    if not isinstance(raw_keys, list):
        raise BadInput("keys must be a list of [channel id, conversation id]")
    try:
        keys = tuple(RecipientKey.from_json(k) for k in raw_keys)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    return PageJob(notification, page, keys, attempt)


def seconds_until(when: datetime | None, now: datetime) -> int:
    """Whole seconds to wait for `when`, rounded up: a delayed message must never arrive early."""
    if when is None:
        return 0
    return max(0, math.ceil((when - now).total_seconds()))


def start(job: Job, services: NotificationServices, *, now: datetime | None = None,
          actor: Actor | None = None) -> tuple[Notification, bool]:
    """Record the notification (idempotent on its id) and queue its first scan; (notification, created).
    The catalogue lists it, `actor` (a service, by default) as its author.

    Re-queueing the first scan for an existing, unfinished notification is harmless (each
    scan step is a no-op once done) and finishes one whose creator died before queueing it.
    A future `notBefore` delays that first scan, or parks it for the timer when it is too far.
    """
    now = now or services.clock()
    delay = seconds_until(job.not_before, now)
    notification, created = services.notifications.create(job, scheduled=delay > 0, parked=delay > MAX_QUEUE_DELAY,
                                                          created_at=now, trace_parent=tracing.current_traceparent() or "")
    if notification.open and not notification.scan_done and not notification.parked:
        jobs.enqueue(ScanJob(job.id).to_json(), services, delay_seconds=delay)
    # Also when not created: a retry after a crash between the two writes still lists it (the first author stays).
    services.catalogue.add(job.id, notification.created_at or now, actor or Actor.service(), summary_of(job))
    return notification, created


def run_scan(scan: ScanJob, services: NotificationServices, *, now: datetime | None = None) -> None:
    store = services.notifications
    notification = store.get(scan.notification)
    if notification is None:
        raise NotFound(f"no notification {scan.notification!r}")
    if notification.state is NotificationState.STOPPED:
        log.info("notification %s is %s: scan %d skipped", scan.notification, notification.state, scan.index)
        return
    if notification.state is NotificationState.SCHEDULED:
        wait = seconds_until(notification.job.not_before, now or services.clock())
        if wait > 0:  # early (a duplicate first scan, or a clock ahead of the queue's): wait again
            if not notification.parked:
                jobs.enqueue(scan.to_json(), services, delay_seconds=min(wait, MAX_QUEUE_DELAY))
            return
        store.start_running(scan.notification)
    page_id = f"{scan.index:06d}"
    record = store.get_page(scan.notification, page_id)
    if record is None:
        _check_follows_a_frozen_page(scan, store)
        keys, next_continuation = _read_page(notification, scan, services, page_id)
        record = store.claim_page(scan.notification, page_id, keys, next_continuation)
    if record.enqueued:
        return  # a duplicate of a finished step: the rest of the chain is already on its way
    # The next step first: a host that dies now delays this page only (until the retry or the sweep).
    if record.last:
        store.mark_scan_done(scan.notification)
    else:
        jobs.enqueue(ScanJob(scan.notification, scan.index + 1, record.next_continuation).to_json(), services)
    # An id saved before the edges checked them (a lone surrogate) fits no queue message: it fails
    # here, alone, counted in its page, and the page job takes the others.
    sendable = [key for key in record.keys if key.well_formed]
    if len(sendable) < len(record.keys):
        services.ledger.record_skips(scan.notification, page_id, [
            (key, DeliveryState.FAILED, "invalid_address") for key in record.keys if not key.well_formed])
        if not sendable:  # no page job will save this page's counts
            store.save_counts(scan.notification, page_id,
                              lambda: counts_of(services.ledger.page(scan.notification, page_id).values()))
    tracing.annotate({tracing.RECIPIENTS: len(record.keys), "notification.last_page": record.last})
    for chunk in split_keys(sendable):
        jobs.enqueue(PageJob(scan.notification, page_id, chunk).to_json(), services)
    store.mark_page_enqueued(scan.notification, page_id)


def _check_follows_a_frozen_page(scan: ScanJob, store: NotificationStore) -> None:
    """A scan may only freeze the page right after the last frozen one, from where that one ended:
    a forged or stale scan job can neither skip ahead nor read an overlapping page."""
    if scan.index == 0:
        if scan.continuation is not None:
            raise BadInput("the first scan of a notification starts at the beginning (continuation null)")
        return
    previous = store.get_page(scan.notification, f"{scan.index - 1:06d}")
    if previous is None or previous.last or previous.next_continuation != scan.continuation:
        raise BadInput(f"scan {scan.index} of {scan.notification!r} does not follow the last frozen page")


def check_page_job(job: PageJob, store: NotificationStore) -> PageRecord:
    """A page job may only name recipients frozen for its page: a forged one cannot widen the audience.
    Returns the page as read."""
    record = store.get_page(job.notification, job.page)
    if record is None:
        raise BadInput(f"page {job.page!r} of {job.notification!r} was never frozen")
    frozen = set(record.keys)
    if any(key not in frozen for key in job.keys):
        raise BadInput(f"the page job names recipients that are not in page {job.page!r} of {job.notification!r}")
    return record


def _read_page(notification: Notification, scan: ScanJob, services: NotificationServices,
               page_id: str) -> tuple[list[RecipientKey], dict[str, Any] | None]:
    target = notification.job.target
    if target.kind is TargetKind.TEAM:
        return _read_roster_page(notification, scan, services, page_id)
    if target.in_organisation:
        return organisation.read_page(notification, scan.continuation, page_id, services)
    if target.kind is TargetKind.CONVERSATION:
        address = services.addresses.get(target.value)
        return ([RecipientKey(address.channel_id, address.conversation_id)] if address else []), None
    if target.kind is TargetKind.USER:
        # A user has a handful of conversations: one page (inactive ones are recorded as skipped).
        return [RecipientKey(a.channel_id, a.conversation_id) for a in services.addresses.find_by_user(target.value)], None
    idle_days = services.settings.address_max_idle_days
    # Fixed per notification (its creation time), so every page of one broadcast uses the same cut.
    seen_since = (notification.created_at or services.clock()) - timedelta(days=idle_days) if idle_days else None
    page = services.addresses.page_active(
        page_size=services.settings.broadcast_page_size, continuation=scan.continuation,
        channel_id=target.value if target.kind is TargetKind.CHANNEL else None, seen_since=seen_since,
    )
    return [RecipientKey(a.channel_id, a.conversation_id) for a in page.addresses], page.continuation


def _read_roster_page(notification: Notification, scan: ScanJob, services: NotificationServices,
                      page_id: str) -> tuple[list[RecipientKey], dict[str, Any] | None]:
    """One page of the team's roster: each member is a recipient (channel, member id), not a conversation;
    the page job finds or creates their personal chat. A member an earlier page listed is left out
    (member_index), so the roster changing during the scan messages nobody twice. A team the bot left
    meanwhile stops the broadcast, with the reason (RecipientGone then poisons this scan job)."""
    token = (scan.continuation or {}).get("roster")
    try:
        page = roster.read_page(notification.job.target.value, services, continuation=token,
                                page_size=services.settings.broadcast_page_size)
    except RecipientGone as gone:  # saved as uninstalled (410), or the roster refused (403/404)
        if gone.code != "team_uninstalled":
            gone = RecipientGone(f"the bot can no longer read the team's roster ({gone.code})", code="team_uninstalled")
        services.notifications.stop(notification.id, NotificationState.STOPPED, f"{gone.code}: {gone.message}")
        raise gone from None
    channel_id = page.team.root.channel_id
    keys = member_index.first_listings(services.notifications.table, notification.id, page_id,
                                       [RecipientKey(channel_id, member.id) for member in page.members])
    return keys, ({"roster": page.continuation} if page.continuation else None)


def split_keys(keys: list[RecipientKey] | tuple[RecipientKey, ...]) -> list[tuple[RecipientKey, ...]]:
    """Page-job-sized chunks: one normally; more only when ids are long enough to overflow a message."""
    if not keys:
        return []
    size = len(json.dumps([k.to_json() for k in keys]).encode())  # escaped as on the queue
    parts = max(1, math.ceil(size / MAX_JOB_BYTES))
    step = math.ceil(len(keys) / parts)
    return [tuple(keys[i:i + step]) for i in range(0, len(keys), step)]
