"""Timer trigger (%SurveySchedule%): start the survey for every active user, on a schedule."""

from __future__ import annotations

import azure.functions as func

from shared_code import services, timer_survey


def main(timer: func.TimerRequest) -> None:
    timer_survey.on_timer(timer.past_due, services.get())
