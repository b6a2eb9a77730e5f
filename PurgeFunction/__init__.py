"""Timer trigger (%PurgeSchedule%): delete addresses, deliveries and notifications past their retention."""

from __future__ import annotations

import azure.functions as func

from shared_code import retention, services


def main(timer: func.TimerRequest) -> None:
    retention.purge(services.get())
