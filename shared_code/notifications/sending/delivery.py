"""Delivery of one page job: each recipient claimed in the ledger, sent, recorded; retries re-queued.

A page job is a batch (powertools' shape): one recipient's failure becomes that
recipient's outcome and never fails the others. Only what a retry of the whole page
can fix (storage unreachable, a dying host) propagates, and the queue runs it again;
the ledger makes that second run skip whatever the first one finished.

While it sends, a page job is watched (watch.py): its heartbeat writes the page's counts so far
(the status moves while it runs), and a watchdog on the queue re-issues the page within about
a minute if its host dies, instead of the ten minutes the host's lease on the message would take.
"""

from __future__ import annotations

import itertools
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
from shared_code.notifications import jobs
from shared_code.notifications.audience import roster
from shared_code.notifications.audience.fanout import PageJob, check_page_job
from shared_code.notifications.jobs import JobKind, TargetKind
from shared_code.notifications.records.ledger import (
    ClaimOutcome,
    Delivery,
    DeliveryState,
    Finish,
    RecipientKey,
    Step,
)
from shared_code.notifications.records.store import Notification, NotificationState, PageCounts, counts_of
from shared_code.notifications.sending import reach, watch
from shared_code.notifications.sending.claim_window import Recipient, run_window
from shared_code.notifications.sending.pacing import GraphPacer, Pacer, pacer_for, tenant_of
from shared_code.plumbing import tracing
from shared_code.plumbing.errors import AppError, AppRejected, NotFound, RecipientGone, Throttled, Upstream
from shared_code.protocol.graph import is_object_id
from shared_code.storage.addresses import Address

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices

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


def run_page(job: PageJob, services: NotificationServices, *, after_send: AfterSend | None = None) -> dict[Outcome, int]:
    """Send one page job; re-queue what failed transiently; refresh the page's counts.

    Table operations per page: the notification, the ledger partition, the page's addresses
    (a range query per channel), then one transaction per half of `SendConcurrency` recipients
    or so (the outcomes that came back and as many new claims; claim_window), and the counts:
    at the start, every heartbeat (a ledger query and a write) and at the end.
    A host that dies mid-page leaves at most `SendConcurrency` per tenant, the sends in flight,
    as `outcome_unknown`; its watchdog re-issues the rest.
    """
    store, ledger = services.notifications, services.ledger
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
    with watch.watched(job, page_record, counts_of(known.values()), services):  # its counts written at the end
        tally = _send_page(job, notification, known, services, after_send)
    tracing.annotate({tracing.RECIPIENTS: len(job.keys), **{f"notification.{o.value}": n for o, n in tally.items()}})
    log.info("notification %s page %s attempt %d: %s", job.notification, job.page, job.attempt,
             {k.value: v for k, v in tally.items()})
    return tally


def _send_page(job: PageJob, notification: Notification, known: dict[RecipientKey, Delivery],
               services: NotificationServices, after_send: AfterSend | None) -> dict[Outcome, int]:
    """Claim, send and record the page's recipients (`known`: its ledger as read); re-queue what failed
    transiently; what became of them."""
    store, ledger, settings = services.notifications, services.ledger, services.settings
    members = _team_members(notification, job, services)  # None unless the audience is a team
    org = reach.organisation(notification, job.keys, services) if notification.job.target.in_organisation else None
    addresses = _addresses_of(job, members, org, services)
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
        if org is not None and record is None and not is_object_id(key.conversation_id):
            skips.append((key, DeliveryState.INACTIVE, "user_not_found"))  # a listed name the directory lacks
            results.append((key, Result(Outcome.INACTIVE, code="user_not_found")))
            continue
        # A team member or a person of the organisation without a personal chat is not skipped: the chat
        # is created (or the app installed) at their turn.
        unknown = address is None and members is None and org is None
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
    graph_pacer = GraphPacer(services) if org is not None else None
    parent, sent_count = tracing.current(), itertools.count()

    def send_one(recipient: Recipient, claimed: Delivery) -> Finish:
        started = time.time()
        finish = _send_one(recipient, claimed)
        _trace_send(job, recipient, finish, parent, started, sent_count)
        return finish

    def _send_one(recipient: Recipient, claimed: Delivery) -> Finish:
        try:
            if recipient.address is None and org is not None:
                reached = reach.reach(claimed, org, services, notification_id=job.notification, page=job.page,
                                      pacer=graph_pacer)
                if isinstance(reached, Finish):
                    return reached
                claimed, address = reached
                return _deliver(claimed, address, notification, services, activity_fields, pacer, after_send)
            return _deliver(claimed, recipient.address, notification, services, activity_fields, pacer, after_send,
                            members=members)
        except AppRejected as rejected:
            stop_reason.append(f"{rejected.code}: {rejected.message}")
            stop.set()
            # Not this recipient's fault: leave it claimable, in case an operator restarts the broadcast.
            return Finish(claimed, DeliveryState.RETRY, "stopped", "the broadcast was stopped")

    # The ledger in rolling transactions, at most `SendConcurrency` per tenant claimed and unrecorded
    # in this process: all that a host that dies can leave in doubt (outcome_unknown).
    recipients = [Recipient(key, record, address, _tenant(key, address, members, org, services),
                            Step.INSTALL if address is None and org is not None else Step.SEND)
                  for key, record, address in todo]
    tracing.annotate({tracing.TENANT: sorted({r.tenant for r in recipients})[:MAX_TENANTS_NAMED]})
    window = run_window(recipients, send_one, ledger=ledger,
                        notification_id=job.notification, page=job.page,
                        concurrency=settings.send_concurrency, stop=stop)
    results.extend((finish.claimed.key, _result(finish)) for finish in window.recorded)
    for key, claim in window.unclaimed:
        results.append((key, Result(Outcome.ALREADY) if claim.outcome is ClaimOutcome.DONE
                        else Result(Outcome.BUSY, wait=claim.wait)))
    results.extend((key, Result(Outcome.STOPPED)) for key in window.stopped)

    if stop_reason:
        store.stop(job.notification, NotificationState.STOPPED, stop_reason[0])
    for _, result in results:
        tally[result.outcome] = tally.get(result.outcome, 0) + 1
    _count_messages(results)
    again = [(key, r) for key, r in results if r.outcome in (Outcome.RETRY, Outcome.BUSY)]
    if again and not stop_reason:
        delay = max(_delay(r, job.attempt, settings.retry_delay_scale) for _, r in again)
        retry = PageJob(job.notification, job.page, tuple(k for k, _ in again), job.attempt + 1)
        jobs.enqueue(retry.to_json(), services, delay_seconds=delay)
    return tally


# What the messages metric calls an outcome: sent, failed, skipped (never to be sent) or retried (queued again).
_METRIC_OUTCOME = {"sent": "sent", "failed": "failed", "gone": "skipped", "inactive": "skipped", "stopped": "skipped",
                   "cancelled": "skipped", "retry": "retried", "busy": "retried"}  # "already": counted before
MAX_TENANTS_NAMED = 10  # on a page's span


def _count_messages(results: list[tuple[RecipientKey, Result]]) -> None:
    """The page's outcomes in the messages metric, by outcome and code (one addition per pair)."""
    if not tracing.active():
        return
    grouped: dict[tuple[str, str], int] = {}
    for _, result in results:
        outcome = _METRIC_OUTCOME.get(result.outcome.value)
        if outcome is not None:
            grouped[(outcome, result.code)] = grouped.get((outcome, result.code), 0) + 1
    for (outcome, code), count in grouped.items():
        tracing.add(tracing.MESSAGES, count, {tracing.OUTCOME: outcome, tracing.CODE: code or None})


def _trace_send(job: PageJob, recipient: Recipient, finish: Finish, parent: tracing.Parent | None, started: float,
                sent_count: itertools.count) -> None:
    """A span for this send, the page's child, if it did not go out or it is the sample of the sent ones."""
    if parent is None:
        return
    if finish.state is DeliveryState.SENT and next(sent_count) % tracing.SENT_SPAN_EVERY:
        return
    tracing.record_span(tracing.SEND, parent, started, time.time(), {
        tracing.NOTIFICATION_ID: job.notification, tracing.PAGE: job.page, tracing.TENANT: recipient.tenant,
        tracing.OUTCOME: finish.state.value, tracing.CODE: finish.code or None, tracing.ATTEMPT: finish.claimed.attempts,
    }, error=finish.code if finish.state is DeliveryState.FAILED else "")


def _team_members(notification: Notification, job: PageJob, services: NotificationServices) -> roster.TeamMembers | None:
    if notification.job.target.kind is not TargetKind.TEAM:
        return None
    return roster.team_members(notification.job.target.value, (k.conversation_id for k in job.keys), services)


def _addresses_of(job: PageJob, members: roster.TeamMembers | None, org: reach.Organisation | None,
                  services: NotificationServices) -> dict[tuple[str, str], Address]:
    """The page's addresses by recipient key: saved conversations, or people's personal chats (a team's
    members, the organisation's people)."""
    if members is None and org is None:
        return services.addresses.get_many((k.channel_id, k.conversation_id) for k in job.keys if k.well_formed)
    people = members if members is not None else org
    found = ((k, people.address(k.conversation_id)) for k in job.keys)
    return {(k.channel_id, k.conversation_id): address for k, address in found if address is not None}


def _tenant(key: RecipientKey, address: Address | None, members: roster.TeamMembers | None,
            org: reach.Organisation | None, services: NotificationServices) -> str:
    """Whose budget and permits a recipient counts against: its address's tenant, or for a person without
    a chat yet, the team's or the organisation's (where the chat will be)."""
    if address is not None:
        return tenant_of(address)
    if members is not None:
        return tenant_of(members.pacing_address(key.conversation_id))
    return tenant_of(org.pacing_address(key.conversation_id, reach.bot_id(services))) if org is not None else ""


def page_counts(services: NotificationServices, notification_id: str, page: str) -> PageCounts:
    """A page's counts, from its ledger partition (at most a page of records)."""
    return counts_of(services.ledger.page(notification_id, page).values())


def _record_cancelled(job: PageJob, services: NotificationServices) -> dict[Outcome, int]:
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


def _result(finish: Finish) -> Result:
    outcome = _OUTCOME_OF[finish.state]
    if finish.state is DeliveryState.RETRY:
        return Result(outcome, wait=finish.retry_after, code=finish.code)
    return Result(outcome, code=finish.code)


def _deliver(claimed: Delivery, address: Address | None, notification: Notification, services: NotificationServices,
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
                with tracing.timed(tracing.SEND_DURATION, tracing.NO_ATTRIBUTES):
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
        sent_to = address.conversation_id if address.conversation_id != claimed.key.conversation_id else ""
        return Finish(claimed, DeliveryState.SENT, activity_id=activity_id, content_version=content["version"],
                      sent_to=sent_to)


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
