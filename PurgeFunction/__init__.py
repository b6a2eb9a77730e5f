"""Timer trigger (%PurgeSchedule%): delete addresses, deliveries and notifications past their retention."""

from __future__ import annotations

import dataclasses
import logging

import azure.functions as func

from shared_code.app import services
from shared_code.notifications.upkeep import retention
from shared_code.plumbing import telemetry

log = logging.getLogger(__name__)


def main(timer: func.TimerRequest, context: func.Context = None) -> None:
    with telemetry.track(log, "PurgeFunction", getattr(context, "invocation_id", None)) as outcome:
        result = retention.purge(services.get())
        outcome.set(**dataclasses.asdict(result))
