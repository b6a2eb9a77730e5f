"""Timer trigger (%ScheduledNotificationsSchedule%): queue the notifications scheduled too far ahead for a
delayed message, and resume broadcasts that stalled (lost or poisoned queue messages)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared_code.app import services
from shared_code.notifications.upkeep import scheduled, sweep
from shared_code.plumbing import telemetry

log = logging.getLogger(__name__)


def main(timer: func.TimerRequest, context: func.Context = None) -> None:
    with telemetry.track(log, "ScheduledNotificationsFunction", getattr(context, "invocation_id", None)) as outcome:
        app = services.get()
        queued = scheduled.pick_up_due(app)
        resumed = sweep.resume_stalled(app)
        outcome.set(queued=len(queued), resumed=len(resumed.scans) + len(resumed.pages),
                    failed_pages=len(resumed.failed_pages))
