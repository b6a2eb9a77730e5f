"""Notifications: the record of one send to many (idempotent create, per-page summaries, status).

One partition per notification in the Notifications table: the notification itself
(RowKey "notification") and one summary per page ("page.<id>"). The scan writes a
page's summary first (its recipients frozen, so a retried scan re-sends the same
page); the page job rewrites its counts from the page's ledger, while it runs (its
heartbeat) and when it ends. Status is one partition query: a few hundred small rows
for 20k recipients, never the deliveries.

A page's summary also says which page jobs run it now: `Runs`, {run id: epoch seconds of its
latest heartbeat}, written and read by sending/watch.py.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared_code.notifications.jobs import Job
from shared_code.notifications.records.ledger import Delivery, DeliveryState, RecipientKey
from shared_code.plumbing.errors import Conflict
from shared_code.storage.keys import encode_key
from shared_code.storage.tables import ensure_table

log = logging.getLogger(__name__)

NOTIFICATION_ROW = "notification"
PAGE_PREFIX = "page."
PEOPLE_PREFIX = "people."  # a `users` audience's list, PEOPLE_PER_ROW to a row (JSON within one property)
PEOPLE_PER_ROW = 500
_KEYS_CHUNK = 30_000  # characters per string property (Table Storage allows 64 KiB = 32K UTF-16 units)
MAX_SAMPLE_ERRORS = 5
PAGE_SAMPLE_ERRORS = 3  # failures a page keeps as examples
# A page re-issued this many times in a row (by the sweep or a watchdog) with no recipient finished in between
# cannot be sent: the sweep counts its unfinished recipients as failed (upkeep/sweep.py).
MAX_RESUMES = 3


class NotificationState(StrEnum):
    SCHEDULED = "scheduled"  # notBefore is ahead: waiting on a delayed message or the scheduled-notifications timer
    RUNNING = "running"
    DONE = "done"  # derived on read (scan finished, nothing pending), never stored
    STOPPED = "stopped"  # the channel refused the bot as a whole
    CANCELLED = "cancelled"  # the caller asked to stop


@dataclass(frozen=True, slots=True)
class Notification:
    job: Job
    payload_hash: str
    state: NotificationState = NotificationState.RUNNING
    stop_reason: str = ""
    scan_done: bool = False
    created_at: datetime | None = None
    parked: bool = False  # scheduled beyond the queue's 7 days: the timer queues it when due
    version: int = 0  # content version: 0 as created, +1 for each edit (after_send.edits)
    recalled: bool = False  # every delivered message is being (or was) deleted; it can no longer be edited
    trace_parent: str = ""  # the W3C traceparent of the span that created it: its trace (plumbing/tracing.py)

    @property
    def open(self) -> bool:
        """Not stopped or cancelled: running, or scheduled to run."""
        return self.state in (NotificationState.RUNNING, NotificationState.SCHEDULED)

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def stopped(self) -> bool:
        return self.state in (NotificationState.STOPPED, NotificationState.CANCELLED)


@dataclass(frozen=True, slots=True)
class PageCounts:
    total: int = 0
    sent: int = 0
    failed: int = 0
    gone: int = 0
    inactive: int = 0
    errors: tuple[dict[str, str], ...] = ()
    cancelled: int = 0  # frozen in a page, never sent: the notification was cancelled first

    @property
    def finished(self) -> int:
        return self.sent + self.failed + self.gone + self.inactive + self.cancelled


@dataclass(frozen=True, slots=True)
class PageRecord:
    page: str
    keys: list[RecipientKey]
    next_continuation: dict[str, Any] | None
    last: bool
    enqueued: bool
    counts: PageCounts = field(default_factory=PageCounts)
    etag: str = ""
    resumed: int = 0  # how often a sweep re-issued this page's job
    resumed_at: int = 0  # how many of its recipients were finished at the latest re-issue
    runs: dict[str, float] = field(default_factory=dict)  # page jobs running it: run id -> latest heartbeat (epoch s)


# What edits and a recall did, per page summary row (column: status field); summed by `status`.
REVISION_COUNTS = {"Updated": "updated", "EditFailed": "editFailed", "NotEditable": "notEditable",
                   "Recalled": "recalled", "RecallFailed": "recallFailed"}


@dataclass(frozen=True, slots=True)
class Status:
    notification: Notification
    pages: int
    counts: PageCounts
    revisions: dict[str, int] = field(default_factory=dict)  # REVISION_COUNTS' fields, summed

    @property
    def pending(self) -> int:
        return self.counts.total - self.counts.finished

    @property
    def state(self) -> NotificationState:
        if self.notification.stopped or self.notification.state is NotificationState.SCHEDULED:
            return self.notification.state
        if self.notification.scan_done and self.pending == 0:
            return NotificationState.DONE
        return NotificationState.RUNNING

    def to_json(self) -> dict[str, Any]:
        n, c = self.notification, self.counts
        out: dict[str, Any] = {
            "id": n.id, "state": self.state.value, "kind": n.job.kind.value, "to": n.job.target.to_json(),
            "scanComplete": n.scan_done, "pages": self.pages,
            "total": c.total, "sent": c.sent, "failed": c.failed,
            "skipped": {"inactive": c.inactive, "gone": c.gone}, "cancelled": c.cancelled, "pending": self.pending,
            "errors": list(c.errors),
        }
        if n.version or n.recalled:
            out.update({"version": n.version, "recalledAll": n.recalled, **self.revisions})
        if n.stop_reason:
            out["stopReason"] = n.stop_reason
        if n.created_at:
            out["createdAt"] = n.created_at.isoformat()
        if n.job.not_before is not None:
            out["notBefore"] = n.job.not_before.isoformat()
        return out


def counts_of(records: Iterable[Delivery]) -> PageCounts:
    """A page's counts from its ledger records, with a sample of the failures."""
    counts = dict.fromkeys(DeliveryState, 0)
    errors: list[dict[str, str]] = []
    for record in records:
        counts[record.state] += 1
        if record.state is DeliveryState.FAILED and len(errors) < PAGE_SAMPLE_ERRORS:
            errors.append({"code": record.code, "message": record.detail})
    return PageCounts(0, counts[DeliveryState.SENT], counts[DeliveryState.FAILED], counts[DeliveryState.GONE],
                      counts[DeliveryState.INACTIVE], tuple(errors), counts[DeliveryState.CANCELLED])


def payload_hash(job: Job) -> str:
    """What makes two requests "the same notification": everything but the id (canonical JSON)."""
    data = {k: v for k, v in job.to_json().items() if k != "id"}
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class NotificationStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    @property
    def table(self) -> TableClient:
        return self._table

    def create(self, job: Job, *, scheduled: bool = False, parked: bool = False,
               created_at: datetime | None = None, trace_parent: str = "") -> tuple[Notification, bool]:
        """Insert the notification unless it exists; (notification, created).

        The same id with a different payload is a Conflict (409): a reused key, not a retry.
        `scheduled`: it waits for its notBefore; `parked`: too far ahead for a delayed message.
        `trace_parent`: its trace, which the timers' re-issues, edits and recalls continue.
        """
        ensure_table(self._table)
        digest = payload_hash(job)
        state = NotificationState.SCHEDULED if scheduled else NotificationState.RUNNING
        kept = job
        if job.target.people:
            # Up to 10,000 people fit no table property: the list goes in rows of its own first, and the
            # notification (written last: what makes it exist) keeps their count.
            self._save_people(job.id, job.target.people)
            kept = replace(job, target=job.target.without_people())
        entity = {
            "PartitionKey": encode_key(job.id), "RowKey": NOTIFICATION_ROW,
            "NotificationId": job.id, "Job": json.dumps(kept.to_json(), ensure_ascii=False),
            "PayloadHash": digest, "State": state.value, "StopReason": "",
            "ScanDone": False, "CreatedAt": (created_at or datetime.now(UTC)).astimezone(UTC), "Parked": parked,
        }
        if trace_parent:
            entity["TraceParent"] = trace_parent
        if job.not_before is not None:
            entity["NotBefore"] = job.not_before.astimezone(UTC)
        try:
            self._table.create_entity(entity)
            return _notification(entity), True
        except ResourceExistsError:
            existing = self.get(job.id)
            if existing is None:  # deleted in between: try once more
                return self.create(job, scheduled=scheduled, parked=parked, created_at=created_at,
                                   trace_parent=trace_parent)
            if existing.payload_hash != digest:
                raise Conflict(f"notification id {job.id!r} was already used for a different notification") from None
            return existing, False

    def _save_people(self, notification_id: str, people: tuple[str, ...]) -> None:
        pk = encode_key(notification_id)
        rows = [("upsert", {"PartitionKey": pk, "RowKey": f"{PEOPLE_PREFIX}{i // PEOPLE_PER_ROW:06d}",
                            "People": json.dumps(people[i:i + PEOPLE_PER_ROW])})
                for i in range(0, len(people), PEOPLE_PER_ROW)]
        for start in range(0, len(rows), 100):
            self._table.submit_transaction(rows[start:start + 100])

    def people(self, notification_id: str, index: int) -> list[str] | None:
        """Part `index` of a `users` notification's list (PEOPLE_PER_ROW people); None past the end."""
        try:
            entity = self._table.get_entity(encode_key(notification_id), f"{PEOPLE_PREFIX}{index:06d}")
        except ResourceNotFoundError:
            return None
        return list(json.loads(entity.get("People") or "[]"))

    def get(self, notification_id: str) -> Notification | None:
        ensure_table(self._table)
        try:
            return _notification(self._table.get_entity(encode_key(notification_id), NOTIFICATION_ROW))
        except ResourceNotFoundError:
            return None

    def stop(self, notification_id: str, state: NotificationState, reason: str) -> None:
        """Stop a running or scheduled notification; the first reason given is the one kept."""
        self._move(notification_id, (NotificationState.RUNNING, NotificationState.SCHEDULED),
                   {"State": state.value, "StopReason": reason[:1000]})

    def start_running(self, notification_id: str) -> None:
        """A scheduled notification's time has come (its first scan runs); a cancelled one stays cancelled."""
        self._move(notification_id, (NotificationState.SCHEDULED,),
                   {"State": NotificationState.RUNNING.value, "Parked": False})

    def unpark(self, notification_id: str) -> None:
        """The timer queued it: later pickups leave it alone."""
        self._move(notification_id, (NotificationState.SCHEDULED,), {"Parked": False})

    def _move(self, notification_id: str, from_states: tuple[NotificationState, ...], changes: dict[str, Any]) -> None:
        # ETag-guarded: a cancel racing the first scan ends either cancelled or running, never half.
        for _ in range(5):
            try:
                entity = self._table.get_entity(encode_key(notification_id), NOTIFICATION_ROW)
            except ResourceNotFoundError:
                return
            if entity.get("State") not in {s.value for s in from_states}:
                return
            try:
                self._table.update_entity(
                    {"PartitionKey": entity["PartitionKey"], "RowKey": NOTIFICATION_ROW, **changes},
                    mode=UpdateMode.MERGE, etag=entity.metadata["etag"], match_condition=MatchConditions.IfNotModified)
                return
            except ResourceModifiedError:
                continue

    def revise(self, notification_id: str, job: Job, expected_version: int) -> int:
        """Store `job` as the notification's content, one version on; the new version. Guarded by the ETag:
        Conflict if it was recalled or edited by someone else since it was read at `expected_version`.
        The payload hash stays the creating request's, so a retry of that request is still no conflict."""
        try:
            entity = self._table.get_entity(encode_key(notification_id), NOTIFICATION_ROW)
        except ResourceNotFoundError:
            raise Conflict("the notification went away while it was edited") from None
        if entity.get("Recalled"):
            raise Conflict("the notification was recalled: it cannot be edited")
        if int(entity.get("Version") or 0) != expected_version:
            raise Conflict("the notification was edited by another request at the same time; read it and try again")
        try:
            self._table.update_entity(
                {"PartitionKey": entity["PartitionKey"], "RowKey": NOTIFICATION_ROW,
                 "Job": json.dumps(job.to_json(), ensure_ascii=False), "Version": expected_version + 1},
                mode=UpdateMode.MERGE, etag=entity.metadata["etag"], match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            raise Conflict("the notification changed while it was edited; read it and try again") from None
        return expected_version + 1

    def recall(self, notification_id: str) -> None:
        """Mark it recalled (edits are refused from now on) and stop what has not been sent, as cancel does."""
        for _ in range(5):
            try:
                entity = self._table.get_entity(encode_key(notification_id), NOTIFICATION_ROW)
            except ResourceNotFoundError:
                return
            changes: dict[str, Any] = {"Recalled": True}
            if entity.get("State") in (NotificationState.RUNNING.value, NotificationState.SCHEDULED.value):
                changes.update(State=NotificationState.CANCELLED.value, StopReason="recalled by the caller")
            try:
                self._table.update_entity({"PartitionKey": entity["PartitionKey"], "RowKey": NOTIFICATION_ROW,
                                           **changes}, mode=UpdateMode.MERGE, etag=entity.metadata["etag"],
                                          match_condition=MatchConditions.IfNotModified)
                return
            except ResourceModifiedError:
                continue

    def save_revision_counts(self, notification_id: str, page: str, counts: dict[str, int]) -> None:
        """A page's edit and recall counts (REVISION_COUNTS' columns), recomputed from its ledger by the caller."""
        self._table.update_entity({"PartitionKey": encode_key(notification_id), "RowKey": PAGE_PREFIX + page,
                                   **{k: int(v) for k, v in counts.items() if k in REVISION_COUNTS}},
                                  mode=UpdateMode.MERGE)

    def created_since(self, since: datetime) -> list[str]:
        """Ids of the notifications created at or after `since`, newest first (parameterized query)."""
        ensure_table(self._table)
        rows = self._table.query_entities("RowKey eq @row and CreatedAt ge @since",
                                          parameters={"row": NOTIFICATION_ROW, "since": since.astimezone(UTC)},
                                          select=["NotificationId", "CreatedAt"])
        found = sorted(rows, key=lambda r: r.get("CreatedAt") or since, reverse=True)
        return [str(r["NotificationId"]) for r in found if r.get("NotificationId")]

    def parked_due(self, until: datetime) -> list[Notification]:
        """Parked notifications whose notBefore is at or before `until` (parameterized query)."""
        ensure_table(self._table)
        rows = self._table.query_entities(
            "RowKey eq @row and Parked eq @parked and State eq @state and NotBefore le @until",
            parameters={"row": NOTIFICATION_ROW, "parked": True, "state": NotificationState.SCHEDULED.value,
                        "until": until.astimezone(UTC)})
        return [_notification(row) for row in rows]

    def unsettled(self) -> list[Notification]:
        """Running notifications not yet seen finished by a sweep (parameterized query)."""
        ensure_table(self._table)
        rows = self._table.query_entities("RowKey eq @row and State eq @state",
                                          parameters={"row": NOTIFICATION_ROW, "state": NotificationState.RUNNING.value})
        return [_notification(row) for row in rows if not row.get("Settled")]

    def mark_settled(self, notification_id: str) -> None:
        """The sweep saw it finished: later sweeps pass it by."""
        self._table.update_entity({"PartitionKey": encode_key(notification_id), "RowKey": NOTIFICATION_ROW,
                                   "Settled": True}, mode=UpdateMode.MERGE)

    def pages(self, notification_id: str) -> tuple[list[PageRecord], datetime | None]:
        """Every frozen page of a notification, in order, and when anything in its partition last changed."""
        ensure_table(self._table)
        rows = list(self._table.query_entities("PartitionKey eq @pk", parameters={"pk": encode_key(notification_id)}))
        stamps = [row.metadata.get("timestamp") for row in rows if row.metadata.get("timestamp") is not None]
        pages = sorted((_page(row) for row in rows if row["RowKey"].startswith(PAGE_PREFIX)), key=lambda p: p.page)
        return pages, max(stamps) if stamps else None

    def count_resume(self, notification_id: str, page: str, resumed: int, finished: int) -> None:
        """A sweep re-issued the page when `finished` of its recipients were done."""
        self._table.update_entity({"PartitionKey": encode_key(notification_id), "RowKey": PAGE_PREFIX + page,
                                   "Resumed": resumed, "ResumedAt": finished}, mode=UpdateMode.MERGE)

    def mark_scan_done(self, notification_id: str) -> None:
        self._table.update_entity({"PartitionKey": encode_key(notification_id), "RowKey": NOTIFICATION_ROW,
                                   "ScanDone": True}, mode=UpdateMode.MERGE)

    def get_page(self, notification_id: str, page: str) -> PageRecord | None:
        try:
            return _page(self._table.get_entity(encode_key(notification_id), PAGE_PREFIX + page))
        except ResourceNotFoundError:
            return None

    def claim_page(self, notification_id: str, page: str, keys: list[RecipientKey],
                   next_continuation: dict[str, Any] | None) -> PageRecord:
        """Freeze a page's recipients (conditional insert); a retried scan gets the first version back."""
        text = json.dumps([k.to_json() for k in keys], ensure_ascii=False)
        entity: dict[str, Any] = {
            "PartitionKey": encode_key(notification_id), "RowKey": PAGE_PREFIX + page,
            "Next": json.dumps(next_continuation) if next_continuation is not None else "",
            "Last": next_continuation is None, "Enqueued": False, "Total": len(keys),
            "Sent": 0, "Failed": 0, "Gone": 0, "Inactive": 0, "Cancelled": 0, "Errors": "[]",
            "KeyChunks": 0,
        }
        chunks = [text[i:i + _KEYS_CHUNK] for i in range(0, len(text), _KEYS_CHUNK)] or ["[]"]
        entity["KeyChunks"] = len(chunks)
        for index, chunk in enumerate(chunks):
            entity[f"Keys{index}"] = chunk
        try:
            meta = self._table.create_entity(entity)
            return _page(entity, etag=str(meta.get("etag") or ""))  # ours as written: no read back
        except ResourceExistsError:
            pass
        record = self.get_page(notification_id, page)
        assert record is not None  # just written, and pages are never deleted
        return record

    def mark_page_enqueued(self, notification_id: str, page: str) -> None:
        self._table.update_entity({"PartitionKey": encode_key(notification_id), "RowKey": PAGE_PREFIX + page,
                                   "Enqueued": True}, mode=UpdateMode.MERGE)

    def save_counts(self, notification_id: str, page: str, compute: Callable[[], PageCounts], *,
                    read: PageRecord | None = None,
                    runs: Callable[[dict[str, float]], dict[str, float]] | None = None) -> PageRecord | None:
        """Rewrite a page's counts from `compute()` (reads the ledger), ETag-guarded; the page as written
        (None if it is not there, or if others kept writing it).

        The page's ETag is read before the ledger: a writer whose ledger read is older
        than another's write fails its update and reads again, so counts never go back.
        `runs` rewrites the page's `Runs` in the same write (a page job's heartbeat: sending/watch.py).
        """
        for _ in range(10):
            # `read`: the page as the caller read (or last wrote) it before its ledger reads (the same rule holds).
            record, read = (read, None) if read is not None else (self.get_page(notification_id, page), None)
            if record is None:
                return None
            counts: PageCounts = compute()
            entity: dict[str, Any] = {
                "PartitionKey": encode_key(notification_id), "RowKey": PAGE_PREFIX + page,
                "Sent": counts.sent, "Failed": counts.failed, "Gone": counts.gone,
                "Inactive": counts.inactive, "Cancelled": counts.cancelled, "Errors": json.dumps(list(counts.errors))}
            new_runs = record.runs if runs is None else runs(dict(record.runs))
            if runs is not None:
                entity["Runs"] = json.dumps(new_runs)
            try:
                meta = self._table.update_entity(entity, mode=UpdateMode.MERGE, etag=record.etag,
                                                 match_condition=MatchConditions.IfNotModified)
            except ResourceModifiedError:
                continue
            return replace(record, counts=replace(counts, total=record.counts.total), runs=new_runs,
                           etag=str(meta.get("etag") or ""))
        log.warning("page %s of %s: counts not saved, the page kept changing", page, notification_id)
        return None

    def replace_runs(self, record: PageRecord, notification_id: str, runs: dict[str, float], counts: PageCounts,
                     *, resumed: int, resumed_at: int) -> bool:
        """Write the page's `Runs`, its counts (from a ledger read made after `record` was read) and its resume
        count, if the page is still as `record` read it (ETag); False if it changed meanwhile."""
        try:
            self._table.update_entity(
                {"PartitionKey": encode_key(notification_id), "RowKey": PAGE_PREFIX + record.page,
                 "Runs": json.dumps(runs), "Resumed": resumed, "ResumedAt": resumed_at,
                 "Sent": counts.sent, "Failed": counts.failed, "Gone": counts.gone, "Inactive": counts.inactive,
                 "Cancelled": counts.cancelled, "Errors": json.dumps(list(counts.errors))},
                mode=UpdateMode.MERGE, etag=record.etag, match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    def status(self, notification_id: str) -> Status | None:
        """Sum of the page summaries: one partition query."""
        ensure_table(self._table)
        rows = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": encode_key(notification_id)},
            select=["RowKey", "NotificationId", "Job", "PayloadHash", "State", "StopReason", "ScanDone",
                    "CreatedAt", "Parked", "Total", "Sent", "Failed", "Gone", "Inactive", "Cancelled", "Errors",
                    "Version", "Recalled", *REVISION_COUNTS],
        )
        revisions = dict.fromkeys(REVISION_COUNTS.values(), 0)
        notification: Notification | None = None
        pages = 0
        total = sent = failed = gone = inactive = cancelled = 0
        errors: list[dict[str, str]] = []
        for row in rows:
            if row["RowKey"] == NOTIFICATION_ROW:
                notification = _notification(row)
                continue
            pages += 1
            total += int(row.get("Total") or 0)
            sent += int(row.get("Sent") or 0)
            failed += int(row.get("Failed") or 0)
            gone += int(row.get("Gone") or 0)
            inactive += int(row.get("Inactive") or 0)
            cancelled += int(row.get("Cancelled") or 0)
            for column, name in REVISION_COUNTS.items():
                revisions[name] += int(row.get(column) or 0)
            if len(errors) < MAX_SAMPLE_ERRORS:
                errors.extend(json.loads(row.get("Errors") or "[]")[: MAX_SAMPLE_ERRORS - len(errors)])
        if notification is None:
            return None
        return Status(notification, pages, PageCounts(total, sent, failed, gone, inactive, tuple(errors), cancelled),
                      revisions)


def _notification(entity: Any) -> Notification:
    from shared_code.notifications.jobs import parse_job

    job = parse_job(json.loads(entity["Job"]), stored=True)
    created = entity.get("CreatedAt")
    return Notification(
        job=job, payload_hash=entity["PayloadHash"], state=NotificationState(entity.get("State") or "running"),
        stop_reason=entity.get("StopReason") or "", scan_done=bool(entity.get("ScanDone")),
        created_at=created if isinstance(created, datetime) else None, parked=bool(entity.get("Parked")),
        version=int(entity.get("Version") or 0), recalled=bool(entity.get("Recalled")),
        trace_parent=str(entity.get("TraceParent") or ""),
    )


def _page(entity: Any, *, etag: str | None = None) -> PageRecord:
    text = "".join(entity.get(f"Keys{i}") or "" for i in range(int(entity.get("KeyChunks") or 0)))
    keys = [RecipientKey.from_json(k) for k in json.loads(text or "[]")]
    nxt = entity.get("Next") or ""
    counts = PageCounts(int(entity.get("Total") or 0), int(entity.get("Sent") or 0), int(entity.get("Failed") or 0),
                        int(entity.get("Gone") or 0), int(entity.get("Inactive") or 0),
                        tuple(json.loads(entity.get("Errors") or "[]")), int(entity.get("Cancelled") or 0))
    return PageRecord(page=entity["RowKey"][len(PAGE_PREFIX):], keys=keys,
                      next_continuation=json.loads(nxt) if nxt else None, last=bool(entity.get("Last")),
                      enqueued=bool(entity.get("Enqueued")), counts=counts, resumed=int(entity.get("Resumed") or 0),
                      resumed_at=int(entity.get("ResumedAt") or 0), runs=_runs(entity.get("Runs")),
                      etag=etag if etag is not None else str(entity.metadata.get("etag") or ""))


def _runs(text: Any) -> dict[str, float]:
    """A page's `Runs` as stored; anything else (never written, or not ours) is no run at all."""
    try:
        found = json.loads(text) if isinstance(text, str) and text else {}
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(k): float(v) for k, v in found.items() if isinstance(v, int | float) and not isinstance(v, bool)}


__all__ = ["Notification", "NotificationState", "NotificationStore", "PageCounts", "PageRecord", "Status",
           "payload_hash"]
