"""The sweep: every broadcast reaches a final state, even when its queue messages were lost or poisoned.

A broadcast moves by queue messages (scan, then pages). A host that dies holding one, a
message the host poisoned after repeated infrastructure failures, or one deleted by hand
leaves the notification `running` with nothing left to move it. The sweep (run by
ScheduledNotificationsFunction) looks at running notifications whose partition has not
changed for `StalledAfterSeconds` and re-issues what is missing:

- the scan: the step after the last frozen page (the forged-scan check accepts exactly that);
- each frozen page whose counts do not add up: a page job for its unfinished recipients.

A page whose job beats (sending/watch.py) is left alone, whatever `StalledAfterSeconds` says: its
host is alive, and if it dies the page's watchdog re-issues it within about a minute. So the sweep
is for what no watchdog watches: a scan, a page job that never started, a watch job lost with its host.

Re-issuing is safe because the ledger is: a recipient already sent is skipped, one claimed
by a live host is left to it. A page re-issued MAX_RESUMES times without finishing cannot
be sent at all (re-issued MAX_RESUMES times in a row with no recipient finished): its unfinished recipients are counted as failed, with the reason, so the
counts add up to the audience and the notification ends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from shared_code.notifications import jobs
from shared_code.notifications.audience import fanout
from shared_code.notifications.records.ledger import TERMINAL, ClaimOutcome, DeliveryState
from shared_code.notifications.records.store import MAX_RESUMES, Notification, PageRecord, counts_of
from shared_code.notifications.sending import watch
from shared_code.plumbing import tracing

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    checked: int = 0
    settled: list[str] = field(default_factory=list)
    scans: list[str] = field(default_factory=list)  # "<notification>/<index>"
    pages: list[str] = field(default_factory=list)  # "<notification>/<page>"
    failed_pages: list[str] = field(default_factory=list)


def resume_stalled(services: NotificationServices, *, now: datetime | None = None) -> SweepReport:
    """Re-issue the missing work of every running notification with no progress for StalledAfterSeconds."""
    now = (now or services.clock()).astimezone(UTC)
    stalled_after = timedelta(seconds=services.settings.stalled_after_seconds)
    store = services.notifications
    report = SweepReport()
    for notification in store.unsettled():
        report.checked += 1
        status = store.status(notification.id)
        if status is not None and status.state.value == "done":
            store.mark_settled(notification.id)
            report.settled.append(notification.id)
            continue
        pages, changed = store.pages(notification.id)
        if changed is not None and now - changed.astimezone(UTC) < stalled_after:
            continue
        with tracing.span(tracing.RESUME, {tracing.NOTIFICATION_ID: notification.id},
                          traceparent=notification.trace_parent):  # its re-issued jobs stay in its trace
            _resume(notification, pages, services, report, now.timestamp())
    return report


def _resume(notification: Notification, pages: list[PageRecord], services: NotificationServices, report: SweepReport,
            now: float) -> None:
    store, nid = services.notifications, notification.id
    if not notification.scan_done:
        scan = _next_scan(nid, pages)
        if scan is None:
            store.mark_scan_done(nid)  # the last page was frozen and queued; only the flag was lost
        else:
            jobs.enqueue(scan.to_json(), services)
            report.scans.append(f"{nid}/{scan.index}")
    for page in pages:
        if not page.enqueued:  # frozen, but its page jobs were never queued: that scan step again
            if page is not pages[-1] or notification.scan_done:
                jobs.enqueue(fanout.ScanJob(nid, int(page.page)).to_json(), services)
                report.scans.append(f"{nid}/{int(page.page)}")
            continue
        if page.counts.finished >= len(page.keys) or watch.is_running(page, services.settings, now):
            continue
        unfinished = [key for key, record in _ledger(services, nid, page).items() if record not in TERMINAL]
        if not unfinished:  # all recorded, only the counts were not saved
            _save_counts(services, nid, page)
            continue
        # Resumes are counted while nothing moves; a page that made progress since starts over.
        resumed = page.resumed if page.counts.finished == page.resumed_at else 0
        if resumed >= MAX_RESUMES:
            _fail(services, nid, page, unfinished, resumed)
            report.failed_pages.append(f"{nid}/{page.page}")
            continue
        store.count_resume(nid, page.page, resumed + 1, page.counts.finished)
        jobs.enqueue(fanout.PageJob(nid, page.page, tuple(unfinished), attempt=1).to_json(), services)
        report.pages.append(f"{nid}/{page.page}")
        log.warning("notification %s page %s had no progress: re-issued for %d recipients", nid, page.page,
                    len(unfinished))


def _next_scan(notification_id: str, pages: list[PageRecord]) -> fanout.ScanJob | None:
    if not pages:
        return fanout.ScanJob(notification_id)
    last = pages[-1]
    index = int(last.page)
    if not last.enqueued:  # frozen, but its jobs were never queued: that scan step again
        return fanout.ScanJob(notification_id, index)
    if last.last:
        return None
    return fanout.ScanJob(notification_id, index + 1, last.next_continuation)


def _ledger(services: NotificationServices, notification_id: str, page: PageRecord) -> dict:
    """The state of each of the page's recipients; None where nothing was recorded yet."""
    known = services.ledger.page(notification_id, page.page)
    return {key: (known[key].state if key in known else None) for key in page.keys}


def _fail(services: NotificationServices, notification_id: str, page: PageRecord, unfinished: list, resumed: int) -> None:
    ledger = services.ledger
    reason = f"the page's job was re-issued {resumed} times without progress (see the poison queue)"
    known = ledger.page(notification_id, page.page)
    ledger.record_skips(notification_id, page.page,
                        [(key, DeliveryState.FAILED, "page_failed") for key in unfinished if key not in known])
    for key in unfinished:
        record = known.get(key)
        if record is None:
            continue
        claim = ledger.claim(notification_id, page.page, key, record)
        if claim.outcome is ClaimOutcome.CLAIMED and claim.delivery is not None:
            ledger.finish(notification_id, page.page, claim.delivery, DeliveryState.FAILED, "page_failed", reason)
    _save_counts(services, notification_id, page)
    log.error("notification %s page %s: %d recipients failed: %s", notification_id, page.page, len(unfinished), reason)


def _save_counts(services: NotificationServices, notification_id: str, page: PageRecord) -> None:
    services.notifications.save_counts(notification_id, page.page,
                                       lambda: counts_of(services.ledger.page(notification_id, page.page).values()))
