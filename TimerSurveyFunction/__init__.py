"""Timer trigger (%SurveySchedule%): start the survey for every active user, on a schedule."""

from __future__ import annotations

import logging

import azure.functions as func

from shared_code.app import services
from shared_code.notifications.upkeep import timer_survey
from shared_code.plumbing import telemetry

log = logging.getLogger(__name__)


def main(timer: func.TimerRequest, context: func.Context = None) -> None:
    with telemetry.track(log, "TimerSurveyFunction", getattr(context, "invocation_id", None),
                         past_due=timer.past_due) as outcome:
        job = timer_survey.on_timer(timer.past_due, services.get())
        outcome.set(notification_id=job["id"])
