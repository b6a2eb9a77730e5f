"""After the send: edit every delivered message in place, or recall (delete) them all.

An edit stores the new content on the notification, one content version on, so whoever is not sent yet
gets it (delivery reads the content from the notification and records the version it sent). Then one
internal job per frozen page updates the page's delivered messages:

    {"v": 1, "kind": "editPage", "notification": id, "page": p, "version": n}
    {"v": 1, "kind": "recallPage", "notification": id, "page": p}

Exactly once per recipient and version: a page job first claims its rows on the ledger itself
(`EditedVersion` = n, or `RecallCode` = in_progress) with ETag-guarded merges in one entity-group
transaction per 100 rows, then calls the channel under the pacer, then records the failures (and the
successes, a second transaction per 100). No extra partition and no read per recipient: a page costs the
ledger read, two transactions per 100 delivered messages and one page-summary write. As with sends, a
host that dies between its claim and the call leaves that message unedited (at most once), never twice.

A message the channel could not change yet (5xx, timeouts, throttled past patience) is released (its row
as before the claim) and the job comes back with backoff, up to SendMaxAttempts times; then it is failed.

A page still sending waits (the job comes back later) until none of its recipients is in flight, so a
message sent with the old content by a page job that read the notification before the edit is updated too.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared_code.notifications import jobs
from shared_code.notifications.jobs import EditJob, revised
from shared_code.notifications.records.ledger import Delivery, DeliveryState, RecipientKey, partition_key
from shared_code.notifications.sending.pacing import Pacer, pacer_for
from shared_code.plumbing import tracing
from shared_code.plumbing.errors import AppError, AppRejected, BadInput, Conflict, NotFound, Throttled, Upstream
from shared_code.protocol.activity import message_to
from shared_code.storage.addresses import Address

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices

log = logging.getLogger(__name__)

IN_PROGRESS = "in_progress"
DELETED = "deleted"
NOT_EDITABLE = "not_editable"
MAX_WAITS = 60  # times a page job comes back for a page still sending, before it edits what was sent
WAIT_SECONDS = 5.0
MAX_THROTTLED_TRIES = 10  # uncounted 429s for one message before it is counted as failed
_BATCH = 100  # operations in one entity-group transaction


class RevisionKind(StrEnum):
    EDIT = "editPage"
    RECALL = "recallPage"


@dataclass(frozen=True, slots=True)
class RevisionJob:
    kind: RevisionKind
    notification: str
    page: str
    version: int = 0  # for an edit: the content version to apply
    wait: int = 0  # how often it came back for a page still sending
    attempt: int = 0  # how often it came back for messages the channel could not change yet (5xx, timeouts)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": jobs.VERSION, "kind": self.kind.value, "notification": self.notification,
                               "page": self.page}
        if self.kind is RevisionKind.EDIT:
            out["version"] = self.version
        if self.wait:
            out["wait"] = self.wait
        if self.attempt:
            out["attempt"] = self.attempt
        return out


def is_revision(data: Any) -> bool:
    return isinstance(data, dict) and data.get("kind") in {k.value for k in RevisionKind}


def parse_revision(data: dict[str, Any]) -> RevisionJob:
    """Validate an editPage or recallPage job; BadInput says what is wrong (the message goes to poison)."""
    if not jobs.is_version(data.get("v")):
        raise BadInput(f"unknown job version {data.get('v')!r}; this app reads version {jobs.VERSION}")
    notification, page = data.get("notification"), data.get("page")
    if not isinstance(notification, str) or not notification or not isinstance(page, str) or not page:
        raise BadInput("notification and page are required")
    version, wait, attempt = data.get("version", 0), data.get("wait", 0), data.get("attempt", 0)
    for name, value in (("version", version), ("wait", wait), ("attempt", attempt)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise BadInput(f"{name} must be a non-negative integer")
    kind = RevisionKind(data["kind"])
    if kind is RevisionKind.EDIT and version < 1:
        raise BadInput("version must be a positive integer")
    return RevisionJob(kind, notification, page, version, wait, attempt)


def edit(change: EditJob, services: NotificationServices) -> int:
    """Give notification `change.id` the new content and queue the update of every delivered message;
    the new content version. NotFound, Conflict (recalled) or BadInput: nothing was changed."""
    store = services.notifications
    notification = store.get(change.id)
    if notification is None:
        raise NotFound("no notification with that id")
    if notification.recalled:
        raise Conflict("the notification was recalled: it cannot be edited")
    job = revised(notification.job, change.changes)  # BadInput before anything is written
    version = store.revise(change.id, job, notification.version)
    # Pages frozen after this point are sent with the new content: their page job reads it after now.
    pages, _ = store.pages(change.id)
    with tracing.span(tracing.EDIT, {tracing.NOTIFICATION_ID: change.id, "notification.version": version},
                      traceparent=notification.trace_parent):  # the page updates join the notification's trace
        for page in pages:
            jobs.enqueue(RevisionJob(RevisionKind.EDIT, change.id, page.page, version).to_json(), services)
    log.info("notification %s edited: version %d, %d pages to update", change.id, version, len(pages))
    return version


def recall(notification_id: str, services: NotificationServices) -> None:
    """Stop what has not been sent (as cancel does) and queue the deletion of every delivered message."""
    store = services.notifications
    notification = store.get(notification_id)
    if notification is None:
        raise NotFound("no notification with that id")
    store.recall(notification_id)
    pages, _ = store.pages(notification_id)
    with tracing.span(tracing.RECALL, {tracing.NOTIFICATION_ID: notification_id}, traceparent=notification.trace_parent):
        for page in pages:
            jobs.enqueue(RevisionJob(RevisionKind.RECALL, notification_id, page.page).to_json(), services)
    log.info("notification %s recalled: %d pages to delete", notification_id, len(pages))


def run_revision(job: RevisionJob, services: NotificationServices) -> dict[str, int]:
    """Update (or delete) one page's delivered messages, each once; the page's revision counts."""
    store, ledger = services.notifications, services.ledger
    notification = store.get(job.notification)
    if notification is None:
        raise NotFound(f"no notification {job.notification!r}")
    if job.kind is RevisionKind.EDIT and (notification.recalled or notification.version > job.version):
        return {}  # recalled, or a later edit's jobs update every page with newer content
    page = store.get_page(job.notification, job.page)
    if page is None:
        raise NotFound(f"no page {job.page!r} of notification {job.notification!r}")
    records = ledger.page(job.notification, job.page)
    in_flight = [k for k in page.keys if records.get(k) is None or records[k].state is DeliveryState.IN_PROGRESS
                 or records[k].state is DeliveryState.RETRY]
    if in_flight and (job.kind is RevisionKind.EDIT and not notification.stopped
                      or any(records.get(k) is not None and records[k].state is DeliveryState.IN_PROGRESS
                             for k in in_flight)) and job.wait < MAX_WAITS:
        delay = math.ceil(WAIT_SECONDS * services.settings.retry_delay_scale)
        again = RevisionJob(job.kind, job.notification, job.page, job.version, job.wait + 1)
        jobs.enqueue(again.to_json(), services, delay_seconds=delay)
        return {}
    if job.kind is RevisionKind.EDIT:
        todo = [d for d in records.values() if d.state is DeliveryState.SENT and d.activity_id
                and d.content_version < job.version and d.edited_version < job.version and not d.recall_code]
        claim = {"EditedVersion": job.version, "EditCode": IN_PROGRESS}
    else:
        todo = [d for d in records.values() if d.state is DeliveryState.SENT and d.activity_id and not d.recall_code]
        claim = {"RecallCode": IN_PROGRESS}
    claimed = _claim(services, job, todo, claim)
    content = notification.job.localized() if job.kind is RevisionKind.EDIT else None
    # A person's message (a team member, someone of the organisation) went to their chat: `sent_to`.
    addresses = services.addresses.get_many((d.key.channel_id, d.sent_to or d.key.conversation_id) for d in claimed)
    pacer = pacer_for(services)
    outcomes: dict[RecipientKey, str] = {}
    again: list[Delivery] = []  # the channel could not change them yet: released, and tried by a later job
    last_attempt = job.attempt + 1 >= services.settings.send_max_attempts
    for delivery in claimed:
        address = addresses.get((delivery.key.channel_id, delivery.sent_to or delivery.key.conversation_id))
        code, transient = _apply(job, delivery, address, content, notification.job.locale, pacer, services)
        if transient and not last_attempt:
            again.append(delivery)
        else:
            outcomes[delivery.key] = code
    column = "EditCode" if job.kind is RevisionKind.EDIT else "RecallCode"
    _merge(services, job, [{"RowKey": key.row_key, column: code} for key, code in outcomes.items()]
           + [_released(job, delivery) for delivery in again])
    if again:
        retry = RevisionJob(job.kind, job.notification, job.page, job.version, job.wait, job.attempt + 1)
        delay = math.ceil(min(60.0, 2.0 ** job.attempt) * services.settings.retry_delay_scale)
        jobs.enqueue(retry.to_json(), services, delay_seconds=delay)
    counts = _counts(ledger.page(job.notification, job.page).values())
    store.save_revision_counts(job.notification, job.page, counts)
    log.info("notification %s page %s %s: %s", job.notification, job.page, job.kind.value,
             {code or "ok": list(outcomes.values()).count(code) for code in set(outcomes.values())})
    return counts


def _released(job: RevisionJob, delivery: Delivery) -> dict[str, Any]:
    """A claimed row as it was before the claim, so the job's next attempt finds it to do again."""
    if job.kind is RevisionKind.EDIT:
        return {"RowKey": delivery.key.row_key, "EditedVersion": delivery.edited_version,
                "EditCode": delivery.edit_code}
    return {"RowKey": delivery.key.row_key, "RecallCode": ""}


def _apply(job: RevisionJob, delivery: Delivery, address: Address | None, content: Any, locale: str | None,
           pacer: Pacer, services: NotificationServices) -> tuple[str, bool]:
    """Update or delete one message: "" (edited) or "deleted", else the code of why not; and whether a
    later try may succeed (the channel unwell or throttling past our patience, not refusing)."""
    if address is None:
        return "address_unknown", False
    reference = address.reference
    throttled_tries = 0
    while True:
        pacer.acquire(address)
        try:
            if job.kind is RevisionKind.EDIT:
                fields = content.for_locale(reference.locale).activity_fields()
                activity = message_to(reference, fields.pop("text", ""), locale=locale, extra=fields or None)
                services.connector.update_activity(reference, delivery.activity_id, activity,
                                                   trusted=address.service_url_trusted, retries=2)
                return "", False
            services.connector.delete_activity(reference, delivery.activity_id,
                                               trusted=address.service_url_trusted, retries=2)
            return DELETED, False
        except Throttled as throttled:
            if throttled.status == 429 and throttled_tries < MAX_THROTTLED_TRIES:
                throttled_tries += 1
                pacer.throttled(address, throttled.retry_after)  # the tenant pauses; acquire waits it out
                continue
            return throttled.code or "throttled", True
        except AppRejected as rejected:
            return rejected.code, False
        except Upstream as error:  # an unwell channel: transient; a refused body or the like: not
            return error.code or "failed", error.transient
        except AppError as error:  # ActivityNotFound, a gone recipient
            return error.code or "failed", False


def _claim(services: NotificationServices, job: RevisionJob, todo: list[Delivery], changes: dict[str, Any]) -> list[Delivery]:
    """Make `todo` ours: an ETag-guarded merge each, 100 to a transaction; rows another host changed
    first (a concurrent run of this job, or a recall) are left to it."""
    table = services.ledger.table
    pk = partition_key(job.notification, job.page)
    won: list[Delivery] = []
    for start in range(0, len(todo), _BATCH):
        chunk = todo[start:start + _BATCH]
        operations = [("update", {"PartitionKey": pk, "RowKey": d.key.row_key, **changes},
                       {"mode": UpdateMode.MERGE, "etag": d.etag, "match_condition": MatchConditions.IfNotModified})
                      for d in chunk]
        try:
            table.submit_transaction(operations)
            won.extend(chunk)
            continue
        except Exception:  # TableTransactionError: nothing of it was written; settle each row on its own
            pass
        for delivery, (_, entity, options) in zip(chunk, operations, strict=True):
            try:
                table.update_entity(entity, **options)
                won.append(delivery)
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
    return won


def _merge(services: NotificationServices, job: RevisionJob, rows: list[dict[str, Any]]) -> None:
    table = services.ledger.table
    pk = partition_key(job.notification, job.page)
    for start in range(0, len(rows), _BATCH):
        table.submit_transaction([("update", {"PartitionKey": pk, **row}, {"mode": UpdateMode.MERGE})
                                  for row in rows[start:start + _BATCH]])


def _counts(records: Any) -> dict[str, int]:
    """A page's revision counts (store.REVISION_COUNTS' columns) from its ledger rows."""
    counts = dict.fromkeys(("Updated", "EditFailed", "NotEditable", "Recalled", "RecallFailed"), 0)
    for d in records:
        if d.state is not DeliveryState.SENT:
            continue
        if not d.activity_id:
            counts["NotEditable"] += 1
            continue
        if d.edited_version:
            counts["Updated" if d.edit_code == "" else "EditFailed"] += d.edit_code != IN_PROGRESS
        if d.recall_code:
            counts["Recalled" if d.recall_code == DELETED else "RecallFailed"] += d.recall_code != IN_PROGRESS
    return counts


__all__ = ["RevisionJob", "RevisionKind", "edit", "is_revision", "parse_revision", "recall", "run_revision"]
