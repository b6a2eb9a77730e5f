"""What every benchmark shares: storage to run against, medians, paired ratios, a results row."""

from __future__ import annotations

import os
import statistics
import uuid
from dataclasses import dataclass

from devhost import azurite
from shared_code.plumbing.settings import storage_names

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Figure:
    """One row of the results table."""

    name: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: no target


# Azurite's connection string: the one `make bench` started, or a fresh one.
storage = azurite.running


def app_settings(connection: str, **extra: str) -> dict[str, str]:
    """Settings for one benchmark run: local mode, fresh tables and queue."""
    suffix = uuid.uuid4().hex[:10]
    values = {"AzureWebJobsStorage": connection, "MicrosoftAppId": "", "MicrosoftAppPassword": "", **storage_names(suffix)}
    values.update(extra)
    return values


def median(values: list[float]) -> float:
    return statistics.median(values)


def paired_ratio(ours: list[float], baseline: list[float]) -> float:
    """Median of per-pair ratios: runs alternate A B A B, so machine drift cancels pair by pair."""
    return statistics.median(a / b for a, b in zip(ours, baseline, strict=True))


def run_broadcast(app: object, text: str = "hi", *, timeout: float = 600.0, parallel: int = 16) -> dict:
    """Start a broadcast to everyone and run its scan and page jobs off the queue in this process,
    `parallel` messages at a time as one host instance does (host.json batchSize 16); returns the
    final status. Bounded by `timeout`; a job that raises fails the figure (no silent retry here)."""
    import base64
    import time
    from concurrent.futures import ThreadPoolExecutor

    from shared_code.notifications import queue_runner
    from shared_code.notifications.audience import fanout
    from shared_code.notifications.jobs import parse_job

    notification_id = f"bench-{uuid.uuid4().hex[:8]}"
    fanout.start(parse_job({"v": 1, "id": notification_id, "to": "all", "text": text}), app)
    queue = app.queue()  # type: ignore[attr-defined]

    def run(message: object) -> None:
        queue_runner.handle_queue_message(base64.b64decode(message.content), app, message_id=message.id)  # type: ignore[attr-defined]
        queue.delete_message(message)

    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(parallel, thread_name_prefix="bench-queue") as pool:
        while time.monotonic() < deadline:
            messages = list(queue.receive_messages(max_messages=parallel, visibility_timeout=120))
            if not messages:
                status = app.notifications.status(notification_id).to_json()  # type: ignore[attr-defined]
                if status["state"] == "done":
                    return status
                time.sleep(0.2)  # retries re-queued with a delay, or pages still being summed
                continue
            list(pool.map(run, messages))  # re-raises the first job error
    raise RuntimeError(f"broadcast {notification_id} not done after {timeout:.0f} s")
