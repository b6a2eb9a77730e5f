"""Scheduled notifications: the timer's pickup of those parked beyond the queue's 7-day delay."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from shared_code.notifications import jobs
from shared_code.notifications.audience import fanout
from shared_code.plumbing import tracing

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices

log = logging.getLogger(__name__)

# Queue what falls due before the next firings too, as a delayed message: the timer runs every
# few minutes, and a notification should not wait for it to come round.
LOOKAHEAD = timedelta(hours=1)


def pick_up_due(services: NotificationServices, *, now: datetime | None = None) -> list[str]:
    """Queue the first scan of every parked notification due within LOOKAHEAD; returns their ids.

    Two timers racing both queue a first scan: harmless, a scan step is a no-op once done.
    The message is queued before the notification is unparked, so a crash in between
    only means it is queued once more on the next run.
    """
    now = (now or services.clock()).astimezone(UTC)
    store = services.notifications
    picked = []
    for notification in store.parked_due(now + LOOKAHEAD):
        delay = fanout.seconds_until(notification.job.not_before, now)
        with tracing.span(tracing.DUE, {tracing.NOTIFICATION_ID: notification.id}, traceparent=notification.trace_parent):
            jobs.enqueue(fanout.ScanJob(notification.id).to_json(), services, delay_seconds=delay)
        store.unpark(notification.id)
        picked.append(notification.id)
        log.info("scheduled notification %s queued, %d s before its time", notification.id, delay)
    return picked
