"""Build what the host and the channel would hand the app: HTTP requests and activities."""

from __future__ import annotations

import json
import uuid
from typing import Any

import azure.functions as func


def http_request(
    method: str,
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    route_params: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> func.HttpRequest:
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    all_headers = {"Content-Type": "application/json", "Content-Length": str(len(data))}
    all_headers.update(headers or {})
    return func.HttpRequest(method, url, headers=all_headers, params=params or {}, route_params=route_params or {}, body=data)


def message(
    service_url: str,
    text: str = "hi",
    *,
    conversation_id: str | None = None,
    user_id: str = "user-1",
    channel_id: str = "test",
    locale: str = "en-US",
) -> dict[str, Any]:
    return {
        "type": "message",
        "id": uuid.uuid4().hex,
        "timestamp": "2026-11-25T10:00:00.000Z",
        "channelId": channel_id,
        "serviceUrl": service_url,
        "conversation": {"id": conversation_id or f"conv-{uuid.uuid4().hex}"},
        "from": {"id": user_id, "name": "User"},
        "recipient": {"id": "bot-1", "name": "Bot"},
        "locale": locale,
        "text": text,
    }


def conversation_update(
    service_url: str,
    conversation_id: str,
    *,
    added: list[str] | None = None,
    removed: list[str] | None = None,
    channel_id: str = "test",
) -> dict[str, Any]:
    activity: dict[str, Any] = {
        "type": "conversationUpdate",
        "id": uuid.uuid4().hex,
        "channelId": channel_id,
        "serviceUrl": service_url,
        "conversation": {"id": conversation_id},
        "from": {"id": "user-1", "name": "User"},
        "recipient": {"id": "bot-1", "name": "Bot"},
    }
    if added is not None:
        activity["membersAdded"] = [{"id": member} for member in added]
    if removed is not None:
        activity["membersRemoved"] = [{"id": member} for member in removed]
    return activity


def queue_message(body: Any, *, dequeue_count: int = 1) -> func.QueueMessage:
    """A queue message as the host hands it to a function: base64 already undone."""
    from azure.functions.queue import QueueMessage

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return QueueMessage(id=uuid.uuid4().hex, body=data, dequeue_count=dequeue_count)


def dialog_job(conversation_id: str, *, dialog: str = "survey", job_id: str | None = None) -> dict[str, Any]:
    return {"v": 1, "kind": "dialog", "dialog": dialog, "id": job_id or uuid.uuid4().hex,
            "to": {"conversation": conversation_id}}


def reference(service_url: str, conversation_id: str, *, user_id: str = "", channel_id: str = "test",
              locale: str = "en-US"):
    """A saved address as MessagesFunction would store it (for seeding the store directly)."""
    from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference

    return ConversationReference(
        channel_id=channel_id, service_url=service_url, conversation=ConversationAccount(conversation_id),
        user=ChannelAccount(user_id or f"user-{conversation_id}", "User"), bot=ChannelAccount("bot-1", "Bot"),
        locale=locale,
    )


def reaction(connector, conversation_id: str, reply_to_id: str, kind: str = "like", user_id: str = "user-1") -> dict:
    activity = message(connector.url, "", conversation_id=conversation_id, user_id=user_id)
    activity.update(type="messageReaction", replyToId=reply_to_id, reactionsAdded=[{"type": kind}])
    del activity["text"]
    return activity


def read_receipt(connector, conversation_id: str, value: Any, user_id: str = "user-1") -> dict:
    """Teams' read receipt in a personal chat; `value` is the event's value ({"lastReadMessageId": ...})."""
    activity = message(connector.url, "", conversation_id=conversation_id, user_id=user_id)
    activity.update(type="event", name="application/vnd.microsoft.readReceipt", value=value)
    activity["conversation"]["conversationType"] = "personal"
    del activity["text"]
    return activity
