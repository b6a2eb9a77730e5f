"""The notify API: who to reach and with what, from an HTTP request body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared_code.addresses import Address
from shared_code.errors import BadInput, NotFound
from shared_code.proactive import send_proactive_message
from shared_code.services import Services

MAX_TEXT = 28 * 1024  # the connector refuses larger messages (MessageSizeTooBig)


@dataclass(frozen=True, slots=True)
class NotifyRequest:
    text: str
    locale: str | None
    conversation_id: str


def parse_notify_request(data: dict[str, Any]) -> NotifyRequest:
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadInput("text is required (a non-empty string)")
    if len(text.encode()) > MAX_TEXT:
        raise BadInput(f"text is longer than {MAX_TEXT} bytes")
    locale = data.get("locale")
    if locale is not None and not isinstance(locale, str):
        raise BadInput("locale must be a string such as en-US")
    target = data.get("to")
    if not isinstance(target, dict) or not isinstance(target.get("conversation"), str) or not target["conversation"]:
        raise BadInput('to must be {"conversation": "<conversation id>"}')
    return NotifyRequest(text=text, locale=locale or None, conversation_id=target["conversation"])


def find_address(conversation_id: str, services: Services) -> Address:
    address = services.addresses.get(conversation_id)
    if address is None:
        raise NotFound("no saved address for that conversation")
    return address


def notify(data: dict[str, Any], services: Services) -> dict[str, Any]:
    """Send an ad hoc message to one saved conversation now; returns the channel's activity id.
    A body with "dialog" starts that dialog there instead (see start_dialog)."""
    if "dialog" in data:
        return start_dialog(data, services)
    request = parse_notify_request(data)
    address = find_address(request.conversation_id, services)
    activity_id = send_proactive_message(address, services, text=request.text, locale=request.locale)
    return {"id": activity_id, "conversation": address.conversation_id}


def start_dialog(data: dict[str, Any], services: Services) -> dict[str, Any]:
    """Start a dialog (the survey) in one saved conversation now: {"started": false} when it
    was already running there, or this request's "id" was already applied."""
    from shared_code.dialogs import begin_dialog
    from shared_code.jobs import parse_job

    job = parse_job(data, require_version=False)
    if not job.target.is_single:
        raise BadInput('a dialog starts in one conversation: to must be {"conversation": "<conversation id>"}')
    address = find_address(job.target.value, services)
    return {"started": begin_dialog(address, job.dialog, job.id, services)}
