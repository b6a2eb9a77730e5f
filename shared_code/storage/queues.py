"""Storage queue messages: the base64 JSON text the Functions host reads, and sending it (the queue made on first use)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from shared_code.plumbing.errors import BadInput

# A queue message holds 64 KiB of (base64) text.
MAX_QUEUE_MESSAGE_BYTES = 64 * 1024


def encode_message(data: dict[str, Any]) -> str:
    """Base64 text, as the Functions host expects (messageEncoding: base64)."""
    return base64.b64encode(json.dumps(data, separators=(",", ":")).encode()).decode("ascii")


def decode_message(body: bytes) -> Any:
    """The JSON of a queue message body (the host has already undone the base64)."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadInput("the queue message is not UTF-8 JSON") from None


def decode_base64_text(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput("the queue message is not base64") from None


def send(queue: Any, data: dict[str, Any], delay_seconds: float = 0) -> None:
    """Put `data` on `queue` (an azure QueueClient), invisible for `delay_seconds` (the serverless setTimeout)."""
    from azure.core.exceptions import ResourceNotFoundError

    text = encode_message(data)
    visibility = int(round(delay_seconds)) if delay_seconds > 0 else None
    try:
        queue.send_message(text, visibility_timeout=visibility)
    except ResourceNotFoundError:
        queue.create_queue()
        queue.send_message(text, visibility_timeout=visibility)
