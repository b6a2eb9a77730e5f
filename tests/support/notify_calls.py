"""Helpers shared by the extras tests: call NotifyFunction, seed addresses, drain the jobs queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import NotifyFunction
from shared_code.app import services
from tests.support.builders import http_request, reference
from tests.support.queue_driver import QueueDriver

CARD = {
    "contentType": "application/vnd.microsoft.card.adaptive",
    "content": {"type": "AdaptiveCard", "version": "1.5", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "body": [{"type": "TextBlock", "text": "Release 42", "weight": "Bolder", "wrap": True},
                         {"type": "FactSet", "facts": [{"title": "Build", "value": "42.0.1"}]}],
                "actions": [{"type": "Action.OpenUrl", "title": "Notes", "url": "https://example.com/42"}]},
}
ACTIONS = {"actions": [{"type": "imBack", "title": "Yes", "value": "yes"}, {"type": "imBack", "title": "No", "value": "no"}]}


def call(method: str, body: object = None, *, notification_id: str = "", **kwargs: Any):
    url = "http://bot.example:7071/api/notify" + (f"/{notification_id}" if notification_id else "")
    route = {"id": notification_id} if notification_id else {}
    return NotifyFunction.main(http_request(method, url, body, route_params=route, **kwargs))


def body(response) -> dict:
    return json.loads(response.get_body())


def status(notification_id: str) -> dict:
    return body(call("GET", notification_id=notification_id))


def seed(connector, locales: dict[str, str], *, now: datetime | None = None) -> None:
    """One address per conversation id, with the given locale (and LastSeen = `now`)."""
    store = services.get().addresses
    for conversation_id, locale in locales.items():
        store.save(reference(connector.url, conversation_id, locale=locale), trusted=False, now=now)


def driver(app_env, **kwargs: Any) -> QueueDriver:
    return QueueDriver(app_env.values["AzureWebJobsStorage"], app_env.values["JobsQueueName"], **kwargs)


def drain(app_env, done: Callable[[], bool], *, timeout: float = 30, **kwargs: Any) -> QueueDriver:
    host = driver(app_env, **kwargs)
    host.run_until(done, timeout=timeout)
    return host


def queued() -> list:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return list(services.get().queue().peek_messages(max_messages=32))
    except ResourceNotFoundError:
        return []
