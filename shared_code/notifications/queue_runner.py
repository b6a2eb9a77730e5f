"""Running a job taken from the queue: public jobs start a notification, internal ones fan out, send or watch a page."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared_code.notifications import jobs
from shared_code.notifications.after_send import edits
from shared_code.notifications.audience import fanout
from shared_code.notifications.jobs import EditJob, Job, JobKind
from shared_code.notifications.sending import watch
from shared_code.plumbing import limits, tracing
from shared_code.plumbing.errors import (
    AppRejected,
    BadInput,
    Conflict,
    NotFound,
    RecipientGone,
    TooLarge,
    UntrustedServiceUrl,
)
from shared_code.storage import queues

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices

log = logging.getLogger(__name__)

MESSAGING_SYSTEM = "azure_storage_queues"  # semantic conventions list no value for Azure Storage queues
# What no retry can change: the job itself is wrong, or what it asks for is refused for good.
FINAL_ERRORS = (BadInput, NotFound, AppRejected, Conflict, RecipientGone, TooLarge, UntrustedServiceUrl)
# Errors only data can cause (text that cannot be encoded, a date out of range, runaway nesting):
# the edges refuse such input, so one of these is a bug, but retrying it changes nothing either.
DATA_ERRORS = (UnicodeError, OverflowError, RecursionError)
MAX_POISON_REASON_CHARS = 1000
# A poison record is JSON in base64 on a queue (64 KiB): at most 48 KiB of JSON, with a margin.
MAX_POISON_RECORD_BYTES = 44 * 1024


@dataclass(frozen=True, slots=True)
class Handled:
    """What became of a queue message, for the function's outcome line."""

    kind: str = ""
    notification_id: str = ""
    poisoned: str = ""  # the reason, when the message went to the poison queue


def handle_queue_message(body: bytes, services: NotificationServices, *, message_id: str = "",
                         enqueued_at: datetime | None = None) -> Handled:
    """Run one queue message. Raises only for what a retry can fix (the host retries, then poisons);
    a message that can never succeed goes to the poison queue at once, with the reason.

    `message_id` (the queue's own id, the same on every delivery of a message) names the
    notification of a public job that carries no `id`, so a redelivered job is not a second one.
    `enqueued_at` (the message's insertion time) gives the job's age when picked up, a metric.
    The job runs in a span of its notification's trace (the job's `traceparent`; plumbing/tracing.py).
    """
    picked_up = time.perf_counter()
    try:
        if len(body) > queues.MAX_QUEUE_MESSAGE_BYTES:
            raise BadInput(f"the queue message is larger than {queues.MAX_QUEUE_MESSAGE_BYTES // 1024} KiB")
        data = decode(body)
        internal = isinstance(data, dict) and isinstance(data.get("kind"), str) and fanout.is_internal(data)
        if isinstance(data, dict) and isinstance(data.get("kind"), str) and edits.is_revision(data):
            work: Any = edits.parse_revision(data)
        elif isinstance(data, dict) and data.get("kind") == jobs.EDIT_KIND:
            work = jobs.parse_edit(data)
        elif watch.is_watch(data):
            work = watch.parse_watch(data)
        else:
            work = _parse_internal(data) if internal else _parse_public(data, message_id)
    except BadInput as bad:
        reason = poison(body, bad.message, services)
        log.warning("job refused, moved to poison: %s", reason)
        return Handled(poisoned=reason)
    if isinstance(work, Job | edits.RevisionJob):
        kind = work.kind.value
    else:
        kind = jobs.EDIT_KIND if isinstance(work, EditJob) else type(work).__name__.removesuffix("Job").lower()
    notification_id = work.id if isinstance(work, Job | EditJob) else work.notification
    _record_age(data, kind, enqueued_at)
    try:
        page = f"{work.index:06d}" if isinstance(work, fanout.ScanJob) else getattr(work, "page", None)
        with tracing.job_span(tracing.JOB.format(kind=kind), data.get(jobs.TRACEPARENT), {
            tracing.NOTIFICATION_ID: notification_id, tracing.JOB_KIND: kind, tracing.PAGE: page,
            tracing.ATTEMPT: getattr(work, "attempt", None), "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "process", "messaging.destination.name": services.settings.jobs_queue,
            "messaging.message.id": message_id or None,
        }):
            run(work, services)
    except FINAL_ERRORS as final:
        reason = poison(body, f"{final.code}: {final.message}", services)
        log.warning("job cannot succeed, moved to poison: %s", reason)
        return Handled(kind, notification_id, poisoned=reason)
    except DATA_ERRORS as error:
        log.error("job failed on its own content, moved to poison: %s", type(error).__name__, exc_info=True)
        reason = poison(body, f"unprocessable: {type(error).__name__}", services)
        return Handled(kind, notification_id, poisoned=reason)
    finally:
        tracing.record(tracing.PROCESS_DURATION, time.perf_counter() - picked_up,
                       {"messaging.system": MESSAGING_SYSTEM, "messaging.operation.name": "process",
                        tracing.JOB_KIND: kind})
    return Handled(kind, notification_id)


def _record_age(data: dict[str, Any], kind: str, enqueued_at: datetime | None) -> None:
    """How long the job waited once due: from its insertion plus the delay it was queued with."""
    if enqueued_at is None or not tracing.active():
        return
    delay = data.get(jobs.DELAY)
    delay = delay if isinstance(delay, int) and not isinstance(delay, bool) and 0 <= delay <= 7 * 24 * 3600 else 0
    age = (datetime.now(UTC) - enqueued_at.astimezone(UTC)).total_seconds() - delay
    tracing.record(tracing.JOB_AGE, max(0.0, age), {tracing.JOB_KIND: kind})


def poison(body: bytes, reason: str, services: NotificationServices) -> str:
    """Move the message to `<queue>-poison` with why; returns the reason as recorded.

    The record must itself fit a queue message: a reason quoting the input is clipped, and a message
    that JSON escaping and base64 would make too large keeps only its beginning, marked as cut.
    """
    reason = limits.clip(reason, MAX_POISON_REASON_CHARS)
    text = body.decode("utf-8", "replace")
    kept = text
    while len(json.dumps({"reason": reason, "message": kept})) > MAX_POISON_RECORD_BYTES:
        kept = text[: len(kept) // 2]
    if kept != text:
        kept += f"{limits.ELLIPSIS} [cut: {len(body)} bytes in all]"
    jobs.send_to_poison(kept, reason, services)
    return reason


def decode(body: bytes) -> Any:
    """The message's JSON within the limits of every edge (UTF-8, depth, well-formed text)."""
    not_json = "the queue message is not UTF-8 JSON"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(not_json) from None
    return limits.loads(text, "the queue message", not_json=not_json)


def _parse_internal(data: dict[str, Any]) -> fanout.ScanJob | fanout.PageJob:
    if not jobs.is_version(data.get("v")):
        raise BadInput(f"unknown job version {data.get('v')!r}; this app reads version {jobs.VERSION}")
    return fanout.parse_internal(data)


def _parse_public(data: Any, message_id: str) -> Job:
    if isinstance(data, dict) and "id" not in data and message_id:
        data = dict(data, id=f"q-{message_id}")
    return jobs.parse_job(data)


def run(work: Job | EditJob | edits.RevisionJob | fanout.ScanJob | fanout.PageJob | watch.WatchJob,
        services: NotificationServices) -> None:
    if isinstance(work, watch.WatchJob):
        watch.run_watch(work, services)
    elif isinstance(work, edits.RevisionJob):
        edits.run_revision(work, services)
    elif isinstance(work, EditJob):
        edits.edit(work, services)
    elif isinstance(work, fanout.ScanJob):
        fanout.run_scan(work, services)
    elif isinstance(work, fanout.PageJob):
        from shared_code.notifications.sending.delivery import run_page

        run_page(work, services)
    else:
        run_job(work, services)


def run_job(job: Job, services: NotificationServices) -> None:
    """A public job: a notification, delivered through the same ledger as a broadcast (so exactly once).

    A dialog for one conversation starts here and now: the dialog state records the job ids it
    has applied, which makes it exactly once without the ledger and without two more queue hops.
    """
    from shared_code.notifications.api import resolve_team_target

    job = resolve_team_target(job, services)  # a team audience never reaches the fan-out as it is
    if job.target.is_single:
        address = services.addresses.get(job.target.value)
        if address is None:
            raise NotFound(f"no saved address for conversation {job.target.value!r}")
        if job.kind is JobKind.DIALOG and job.not_before is None:
            from shared_code.conversation.dialogs import begin_dialog

            begin_dialog(address, job.dialog, job.id, services)
            return
    fanout.start(jobs.check_storable(job), services)
