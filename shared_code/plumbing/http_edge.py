"""The HTTP edge: read a JSON body within limits, answer JSON, map app errors to statuses."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared_code.plumbing import limits
from shared_code.plumbing.errors import AppError, BadInput, Throttled, TooLarge

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 1000


def read_json(req: func.HttpRequest, max_bytes: int) -> Any:
    """The request's JSON body, or BadInput / TooLarge naming what is wrong."""
    declared = req.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"the body is larger than {max_bytes} bytes")
    body = req.get_body() or b""
    if len(body) > max_bytes:
        raise TooLarge(f"the body is larger than {max_bytes} bytes")
    if not body.strip():
        raise BadInput("the body is empty; a JSON object is expected")
    return parse_json(body)


def read_json_object(req: func.HttpRequest, max_bytes: int) -> dict[str, Any]:
    data = read_json(req, max_bytes)
    if not isinstance(data, dict):
        raise BadInput("the body must be a JSON object")
    return data


def json_response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> func.HttpResponse:
    if body is None:
        return func.HttpResponse(status_code=status, headers=headers)
    return func.HttpResponse(
        json.dumps(body), status_code=status, headers=headers, mimetype="application/json", charset="utf-8"
    )


def error_response(error: AppError) -> func.HttpResponse:
    # A message may quote the input: clipped, so a huge bad value is not echoed back whole.
    body: dict[str, Any] = {"code": error.code, "message": limits.clip(error.message, MAX_MESSAGE_CHARS)}
    headers: dict[str, str] = {}
    if isinstance(error, Throttled) and error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
        body["retryAfter"] = error.retry_after
    if error.operation_id:
        body["operationId"] = error.operation_id
    status = error.status if 400 <= error.status < 600 else 500
    return json_response(status, {"error": body}, headers or None)


def respond(handler: Callable[[], func.HttpResponse]) -> func.HttpResponse:
    """Run `handler`; app errors become their JSON answers, anything else a 500 with no details."""
    try:
        return handler()
    except AppError as error:
        if error.status >= 500:
            log.error("request failed: %s (%s)", error.code, limits.clip(error.message, MAX_MESSAGE_CHARS))
        else:
            log.info("request refused: %s %s (%s)", error.status, error.code, limits.clip(error.message, MAX_MESSAGE_CHARS))
        return error_response(error)
    except Exception:
        log.exception("unexpected error while handling a request")
        return json_response(500, {"error": {"code": "internal_error", "message": "the request could not be handled"}})


def parse_json(body: bytes) -> Any:
    """The body's JSON, within the limits every edge applies (depth, well-formed text)."""
    return limits.loads(body, "the body")


def csv_response(body: bytes, filename: str) -> func.HttpResponse:
    """A CSV download (UTF-8, header row first); `filename` is reduced to safe characters."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in filename)[:150] or "report.csv"
    return func.HttpResponse(body, status_code=200, mimetype="text/csv", charset="utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{safe}"'})
