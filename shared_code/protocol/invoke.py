"""Invoke responses: what the bot answers, in the HTTP response itself, to an `invoke` activity.

Teams shows an error for an invoke answered with an empty body, so every invoke gets one:
a card or a message for what the bot handles, an error body (and 501) for what it does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared_code.protocol.content import ADAPTIVE_CARD

CARD_ACTION = "adaptiveCard/action"
MESSAGE_TYPE = "application/vnd.microsoft.activity.message"
ERROR_TYPE = "application/vnd.microsoft.error"


@dataclass(frozen=True, slots=True)
class InvokeResponse:
    """The HTTP status and JSON body MessagesFunction answers with (None: no body, for a non-invoke)."""

    status: int
    body: dict[str, Any] | None = None


# A non-invoke activity that a layer above has fully handled: the usual empty 200.
HANDLED = InvokeResponse(200)


def card(content: dict[str, Any]) -> InvokeResponse:
    """The Universal Actions answer that replaces the clicked card with `content` (an AdaptiveCard)."""
    return InvokeResponse(200, {"statusCode": 200, "type": ADAPTIVE_CARD, "value": content})


def message(text: str) -> InvokeResponse:
    """The Universal Actions answer that shows `text` to the user who clicked, leaving the card as it is."""
    return InvokeResponse(200, {"statusCode": 200, "type": MESSAGE_TYPE, "value": text})


def error(status: int, code: str, text: str) -> InvokeResponse:
    """A refused card action: HTTP 200 (Teams reads the status in the body) with an error body."""
    return InvokeResponse(200, {"statusCode": status, "type": ERROR_TYPE, "value": {"code": code, "message": text}})


def not_implemented(name: str) -> InvokeResponse:
    """Any invoke the bot does not handle: 501, as botbuilder answers, but with a body saying so."""
    shown = name or "(no name)"
    return InvokeResponse(501, {"statusCode": 501, "type": ERROR_TYPE,
                                "value": {"code": "NotImplemented", "message": f"this bot does not handle invoke {shown}"}})


def invoke_name(raw: dict[str, Any]) -> str:
    name = raw.get("name")
    return name if isinstance(name, str) else ""


__all__ = ["CARD_ACTION", "HANDLED", "InvokeResponse", "card", "error", "invoke_name", "message", "not_implemented"]
