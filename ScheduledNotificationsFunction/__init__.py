"""Timer trigger (%ScheduledNotificationsSchedule%): queue the notifications scheduled too far ahead for a delayed message."""

from __future__ import annotations

import logging

import azure.functions as func

from shared_code.app import services
from shared_code.notifications import scheduled
from shared_code.plumbing import telemetry

log = logging.getLogger(__name__)


def main(timer: func.TimerRequest, context: func.Context = None) -> None:
    with telemetry.track(log, "ScheduledNotificationsFunction", getattr(context, "invocation_id", None)) as outcome:
        outcome.set(queued=len(scheduled.pick_up_due(services.get())))
