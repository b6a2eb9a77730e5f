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
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from shared_code.conversation.proactive import send_localized
from shared_code.notifications import jobs
from shared_code.notifications.fanout import PageJob
from shared_code.notifications.jobs import JobKind
from shared_code.notifications.ledger import ClaimOutcome, Delivery, DeliveryState, RecipientKey
from shared_code.notifications.rate_limit import process_limiter
from shared_code.notifications.sender import send_all
from shared_code.notifications.store import Notification, NotificationState, PageCounts
from shared_code.plumbing.errors import AppError, AppRejected, NotFound, RecipientGone, Throttled, Upstream

if TYPE_CHECKING:  # the composition root sits above every package: named in annotations only
    from shared_code.app.services import Services

log = logging.getLogger(__name__)

MAX_SAMPLE_ERRORS = 3
# A 429's Retry-After pauses every send of the process, up to this long; the throttled
# recipient itself goes back to the queue with the whole delay.
MAX_THROTTLE_HOLD = 10.0


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
    """Send one page job; re-queue what failed transiently; refresh the page's counts."""
    store, ledger, settings = services.notifications, services.ledger, services.settings
    notification = store.get(job.notification)
    if notification is None:
        raise NotFound(f"no notification {job.notification!r}")
    if notification.stopped:
        log.info("notification %s is %s: page %s not sent", job.notification, notification.state, job.page)
        if notification.state is NotificationState.CANCELLED:
            return _record_cancelled(job, services)
        return {}
    known = ledger.page(job.notification, job.page)
    stop = threading.Event()
    stop_reason: list[str] = []
    activity_fields = _content(notification)

    limiter = process_limiter(settings.send_rate_per_second)

    def send_one(key: RecipientKey, take_token: Callable[[], None]) -> Result:
        try:
            result = _deliver(key, known.get(key), notification, job, services, activity_fields, take_token, stop,
                              after_send)
            if result.outcome is Outcome.RETRY and result.code == "throttled" and result.wait > 0:
                limiter.hold(min(result.wait * settings.retry_delay_scale, MAX_THROTTLE_HOLD))
            return result
        except AppRejected as rejected:
            stop_reason.append(f"{rejected.code}: {rejected.message}")
            stop.set()
            return Result(Outcome.STOPPED, code=rejected.code)

    results = send_all(job.keys, send_one, concurrency=settings.send_concurrency,
                       limiter=limiter, stop=stop)
    if stop_reason:
        store.stop(job.notification, NotificationState.STOPPED, stop_reason[0])
    tally: dict[Outcome, int] = {}
    for _, result in results:
        tally[result.outcome] = tally.get(result.outcome, 0) + 1
    again = [(key, r) for key, r in results if r.outcome in (Outcome.RETRY, Outcome.BUSY)]
    if again and not stop_reason:
        delay = max(_delay(r, job.attempt, settings.retry_delay_scale) for _, r in again)
        retry = PageJob(job.notification, job.page, tuple(k for k, _ in again), job.attempt + 1)
        jobs.enqueue(retry.to_json(), services, delay_seconds=delay)
    store.save_counts(job.notification, job.page, lambda: page_counts(services, job.notification, job.page))
    log.info("notification %s page %s attempt %d: %s", job.notification, job.page, job.attempt,
             {k.value: v for k, v in tally.items()})
    return tally


def page_counts(services: Services, notification_id: str, page: str) -> PageCounts:
    """A page's counts, from its ledger partition (at most a page of records)."""
    counts = dict.fromkeys(DeliveryState, 0)
    errors: list[dict[str, str]] = []
    for record in services.ledger.page(notification_id, page).values():
        counts[record.state] += 1
        if record.state is DeliveryState.FAILED and len(errors) < MAX_SAMPLE_ERRORS:
            errors.append({"code": record.code, "message": record.detail})
    return PageCounts(0, counts[DeliveryState.SENT], counts[DeliveryState.FAILED], counts[DeliveryState.GONE],
                      counts[DeliveryState.INACTIVE], tuple(errors), counts[DeliveryState.CANCELLED])


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
    return {"kind": job.kind, "localized": localized, "locale": job.locale, "dialog": job.dialog, "id": job.id}


def _deliver(key: RecipientKey, known: Delivery | None, notification: Notification, job: PageJob,
             services: Services, content: dict[str, Any], take_token: Callable[[], None],
             stop: threading.Event, after_send: AfterSend | None) -> Result:
    ledger, settings = services.ledger, services.settings
    if known is not None and known.state not in (DeliveryState.RETRY, DeliveryState.IN_PROGRESS):
        return Result(Outcome.ALREADY)
    address = services.addresses.get(key.conversation_id, key.channel_id)
    if address is None or not address.active:
        if known is None:  # a RETRY record is updated when claimed below, so only fresh ones are skipped here
            reason = "address_unknown" if address is None else (address.inactive_reason or "address_inactive")
            ledger.record_skips(job.notification, job.page, [(key, DeliveryState.INACTIVE, reason)])
            return Result(Outcome.INACTIVE, code=reason)
    if stop.is_set():
        return Result(Outcome.STOPPED)
    take_token()  # before the claim: the claim should be as close to the POST as it can be
    claim = ledger.claim(job.notification, job.page, key, known)
    if claim.outcome is ClaimOutcome.DONE:
        return Result(Outcome.ALREADY)
    if claim.outcome is ClaimOutcome.BUSY:
        return Result(Outcome.BUSY, wait=claim.wait)
    assert claim.delivery is not None
    claimed = claim.delivery

    def finish(state: DeliveryState, code: str = "", detail: str = "") -> None:
        ledger.finish(job.notification, job.page, claimed, state, code, detail)

    if address is None or not address.active:  # a retried recipient whose address went away meanwhile
        finish(DeliveryState.INACTIVE, "address_unknown" if address is None else "address_inactive")
        return Result(Outcome.INACTIVE)
    try:
        if content["kind"] is JobKind.MESSAGE:
            # Each recipient gets the content for its own locale; a 429 goes back to the queue, not to sleep.
            send_localized(address, content["localized"], services, locale=content["locale"], retries=0)
        else:
            from shared_code.conversation.dialogs import begin_dialog

            if not begin_dialog(address, content["dialog"], content["id"], services):
                # Already in that dialog (e.g. a survey started by hand): not interrupted twice.
                finish(DeliveryState.INACTIVE, "already_in_dialog", "the conversation is already in this dialog")
                return Result(Outcome.INACTIVE, code="already_in_dialog")
    except (Throttled, Upstream) as error:
        if isinstance(error, Upstream) and not error.transient:
            finish(DeliveryState.FAILED, error.code, error.message)
            return Result(Outcome.FAILED, code=error.code)
        if claimed.attempts >= settings.send_max_attempts:
            finish(DeliveryState.FAILED, error.code, f"gave up after {claimed.attempts} attempts: {error.message}")
            return Result(Outcome.FAILED, code=error.code)
        finish(DeliveryState.RETRY, error.code, error.message)
        wait = error.retry_after if isinstance(error, Throttled) and error.retry_after is not None else -1.0
        return Result(Outcome.RETRY, wait=wait, code=error.code)
    except RecipientGone as gone:  # the address was marked inactive where the send failed
        finish(DeliveryState.GONE, gone.code, gone.message)
        return Result(Outcome.GONE, code=gone.code)
    except AppRejected:
        # Not this recipient's fault: leave it claimable, in case an operator restarts the broadcast.
        finish(DeliveryState.RETRY, "stopped", "the broadcast was stopped")
        raise
    except AppError as error:  # BadInput (400/413 from the channel) and the like: a retry cannot fix it
        finish(DeliveryState.FAILED, error.code, error.message)
        return Result(Outcome.FAILED, code=error.code)
    if after_send is not None:
        after_send(key)
    finish(DeliveryState.SENT)
    return Result(Outcome.SENT)


def _delay(result: Result, attempt: int, scale: float) -> float:
    if result.outcome is Outcome.BUSY:
        return math.ceil(result.wait)  # the lease is already a setting: not scaled
    base = result.wait if result.wait >= 0 else min(60.0, 2.0 ** attempt) * (0.5 + random.random() / 2)
    return math.ceil(base * scale) if base * scale > 0 else 0
