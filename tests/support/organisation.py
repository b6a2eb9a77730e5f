"""An organisation on the Graph stub, wired to the app as Teams would be: installs post their
conversationUpdate to MessagesFunction, chats are on the connector stub."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import MessagesFunction
from stubs.graph import Delivery, GraphLimits, GraphStub
from tests.support.builders import http_request
from tests.support.notify_calls import body, call, drain

APP_ID = "8d3b5f0a-6c1e-4f29-b7a4-2e9c0d1f3a56"  # the manifest id the app is published under
# Fast unless a test says otherwise: Graph's limits off in the stub, the app's Graph budget wide.
FAST = {"RetryDelayScale": "0.25", "SendConcurrency": "16", "SendRatePerSecond": "2000",
        "TenantSendRatePerSecond": "2000", "GraphRatePerSecond": "2000"}


def post_activity(activity: dict[str, Any]) -> int:
    """Teams posting an activity to the bot (local mode: no token)."""
    return MessagesFunction.main(http_request("POST", "http://localhost/api/messages", activity)).status_code


@contextmanager
def organisation(app_env, connector, *, limits: GraphLimits | None = None, delivery: Delivery = Delivery.IMMEDIATE,
                 **settings: str) -> Iterator[GraphStub]:
    """A Graph stub for the test's tenant with the app in its catalog, and the app's settings pointing at it."""
    stub = GraphStub(limits=limits if limits is not None else GraphLimits.off(), service_url=connector.url,
                     send=post_activity, delivery=delivery)
    with stub:
        catalog_id = stub.register_app(APP_ID)
        app_env.set(**{**FAST, **stub.settings_env(), "TeamsAppCatalogId": catalog_id,
                       "TeamsServiceUrl": connector.url, "MicrosoftAppTenantId": stub.tenant_id, **settings})
        yield stub


def broadcast(app_env, to: Any, text: str, notification_id: str, *, timeout: float = 60, **kwargs: Any) -> dict:
    """Send to `to` through the API and the queue until the notification is done; its status."""
    response = call("POST", {"to": to, "text": text, "id": notification_id})
    assert response.status_code == 202, body(response)
    drain(app_env, lambda: body(call("GET", notification_id=notification_id)).get("state") in ("done", "stopped"),
          timeout=timeout, **kwargs)
    return body(call("GET", notification_id=notification_id))


def received(connector, text: str) -> Counter:
    """How often each chat got `text`."""
    return Counter({conversation: sum(1 for a in activities if a.get("text") == text)
                    for conversation, activities in connector.all_activities().items()
                    if any(a.get("text") == text for a in activities)})
