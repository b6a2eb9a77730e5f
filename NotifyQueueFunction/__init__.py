"""Queue trigger: proactive jobs from other services and from the app's own fan-out."""

from __future__ import annotations

import azure.functions as func

from shared_code import job_runner, services


def main(msg: func.QueueMessage) -> None:
    job_runner.handle_queue_message(msg.get_body(), services.get(), message_id=msg.id or "")
