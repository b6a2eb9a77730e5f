"""Broadcasts driven in-process: seed addresses, start a broadcast, run the queue, read the status."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from shared_code.app import services
from shared_code.notifications.audience import fanout
from shared_code.notifications.jobs import parse_job
from tests.support.builders import reference
from tests.support.notify_calls import driver  # also for the tests that import it from here

FAST = {"RetryDelayScale": "0.25", "SendConcurrency": "16", "SendRatePerSecond": "2000", "TenantSendRatePerSecond": "2000"}


def seed(connector_url: str, count: int, *, prefix: str = "c", channel: str = "test") -> list[str]:
    ids = [f"{prefix}-{i:05d}" for i in range(count)]
    services.get().addresses.save_many([reference(connector_url, cid, channel_id=channel) for cid in ids],
                                       trusted=False)
    return ids


def broadcast(text: str = "hello all", *, to: object = "all", job_id: str = "n-1") -> str:
    job = parse_job({"v": 1, "kind": "message", "id": job_id, "to": to, "text": text})
    fanout.start(job, services.get())
    return job_id


def status(notification_id: str) -> dict:
    found = services.get().notifications.status(notification_id)
    assert found is not None
    return found.to_json()


def is_done(notification_id: str):
    return lambda: status(notification_id)["state"] == "done"


class HostDied(BaseException):
    """What a killed host looks like from inside: nothing after it runs (not an Exception)."""


def poisoned(app_env) -> list[dict]:
    """The messages on the jobs queue's poison queue, decoded."""
    return [json.loads(text) for text in driver(app_env).poisoned()]


def queue_main_with_page_hook(after_send: Callable[[Any], None]) -> Callable[[Any], None]:
    """What NotifyQueueFunction runs, with `after_send(key)` called after each send of a page job: a hook
    that raises HostDied plays a host killed mid-page."""
    from shared_code.notifications import queue_runner
    from shared_code.notifications.sending import delivery

    def main(msg) -> None:
        data = json.loads(msg.get_body())
        if data.get("kind") == "page":
            delivery.run_page(fanout.parse_internal(data), services.get(), after_send=after_send)
        else:
            queue_runner.handle_queue_message(msg.get_body(), services.get(), message_id=msg.id)

    return main
