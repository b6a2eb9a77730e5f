"""Queue trigger: proactive jobs from other services and from the app's own fan-out."""

from __future__ import annotations

import logging

import azure.functions as func

from shared_code.app import services
from shared_code.notifications import queue_runner
from shared_code.plumbing import telemetry

log = logging.getLogger(__name__)


def main(msg: func.QueueMessage, context: func.Context = None) -> None:
    with telemetry.track(log, "NotifyQueueFunction", getattr(context, "invocation_id", None),
                         message_id=msg.id, dequeue_count=msg.dequeue_count) as outcome:
        handled = queue_runner.handle_queue_message(msg.get_body(), services.get(), message_id=msg.id or "",
                                                    enqueued_at=msg.insertion_time)
        outcome.set(kind=handled.kind, notification_id=handled.notification_id)
        if handled.poisoned:
            outcome.refused(handled.poisoned, poisoned=True)
