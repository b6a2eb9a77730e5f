"""Timer trigger (%ScheduledNotificationsSchedule%): queue the notifications scheduled too far ahead for a delayed message."""

from __future__ import annotations

import azure.functions as func

from shared_code import scheduling, services


def main(timer: func.TimerRequest) -> None:
    scheduling.pick_up_due(services.get())
