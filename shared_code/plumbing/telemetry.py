"""Telemetry: one structured, secret-free log line per function outcome.

Each invocation ends with one line such as

    outcome=ok function=NotifyFunction invocation_id=5f0c… status=200 notification_id=n-42 sent=3 duration_ms=41

at INFO (success), WARNING (refused input: 4xx, a message sent to poison) or ERROR (a failure:
5xx, an exception the host will retry), so an operator filters by level or by key in
Application Insights, e.g.
`traces | where message startswith "outcome=" | parse-kv message as (function:string, outcome:string, duration_ms:long) with (pair_delimiter=" ", kv_delimiter="=", quote='"')`.
Every value goes through `redact` first: bearer tokens, JWTs, Authorization values and
password/secret/key values never reach a log line; user and conversation ids are replaced too.
`safe_attributes` is the same filter for span and metric attributes (plumbing/tracing.py).

The Python worker logs at INFO and forwards every record to the host: `quiet_sdk_loggers` keeps
the Azure SDK's per-request lines (whose URLs hold table keys, i.e. encoded conversation ids) and
urllib3's out of it, whatever host runs the app.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from enum import Enum
from types import TracebackType
from typing import Any

REDACTED = "[redacted]"
USER_ID = "[user id]"
MAX_VALUE_CHARS = 300  # a log line is for filtering and reading, not for payloads
# Loggers of libraries that log every HTTP request at INFO (azure.core's HttpLoggingPolicy) or DEBUG.
SDK_LOGGERS = ("azure", "urllib3")
# Teams/Bot Framework ids of people and conversations: 29:… users, 8:orgid:…, a:…/19:…@thread… conversations.
_USER_ID_PATTERN = re.compile(r"(?<![\w:])(?:29|8|a|19|28):[A-Za-z0-9_\-@.:;=+/]{8,}")


class Outcome(Enum):
    OK = "ok"
    REFUSED = "refused"
    FAILED = "failed"

    @property
    def level(self) -> int:
        return _LEVELS[self]


_LEVELS = {Outcome.OK: logging.INFO, Outcome.REFUSED: logging.WARNING, Outcome.FAILED: logging.ERROR}


def outcome_for_status(status: int) -> Outcome:
    """2xx/3xx ok, 4xx refused (the caller's input), 5xx failed (ours or upstream)."""
    if status >= 500:
        return Outcome.FAILED
    if status >= 400:
        return Outcome.REFUSED
    return Outcome.OK


# Order matters: a whole Authorization value goes first, so "Bearer <token>" inside it is not counted twice.
_VALUE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?)[^\"'\s,;}]+(?:\s+(?!\[redacted\])[^\"'\s,;}]+)?"),
     r"\1" + REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)\s+(?!\[redacted\])[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    # A JWT/JWS/JWE starts with a base64url JSON header ("eyJ"); other three-part tokens are long.
    (re.compile(r"\beyJ[\w-]*\.[\w-]*\.[\w-]*"), REDACTED),
    (re.compile(r"\b[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}\b"), REDACTED),
    (re.compile(
        r"(?i)\b(password|passwd|pwd|secret|client_secret|clientsecret|microsoftapppassword|accountkey|"
        r"sharedaccesskey|sharedaccesssignature|api[_-]?key|access[_-]?token|refresh[_-]?token|id[_-]?token|token)"
        r"([\"']?\s*[=:]\s*[\"']?)(?!\[redacted\])[^\s\"'&;,}]+"),
     r"\1\2" + REDACTED),
    # Function keys and SAS signatures travel in query strings: ?code=…, &sig=…
    (re.compile(r"(?i)([?&](?:code|sig|key|token|access_token)=)[^&\s\"']+"), r"\1" + REDACTED),
)

_SECRET_KEY_PARTS = frozenset({
    "password", "passwd", "pwd", "secret", "token", "authorization", "auth", "credential", "credentials",
    "cookie", "signature", "sig", "apikey", "key", "sas",
})


def redact(text: str) -> tuple[str, int]:
    """`text` with anything that looks like a credential replaced by [redacted], and how many were."""
    count = 0
    for pattern, replacement in _VALUE_PATTERNS:
        text, n = pattern.subn(replacement, text)
        count += n
    return text, count


def _is_secret_key(key: str) -> bool:
    parts = re.split(r"[_\-.]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower())
    return any(part in _SECRET_KEY_PARTS for part in parts) or key.lower().endswith(("password", "secret", "token"))


def _key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "_"


def _value(value: Any) -> tuple[str, int]:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return ("true" if value else "false"), 0
    if isinstance(value, int):
        return str(value), 0
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip("."), 0
    if isinstance(value, BaseException):
        value = type(value).__name__
    text, count = redact(str(value))
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "…"
    if re.fullmatch(r"[A-Za-z0-9_.:/@+\-\[\]]+", text):
        return text, count
    quoted = json.dumps(text, ensure_ascii=False)  # quoted: spaces, quotes, '=' stay one value
    # A lone surrogate (hostile input can carry one) cannot be encoded as UTF-8: a handler writing the line
    # would fail and the line be lost. As its JSON escape, the line stays whole and still says what came.
    return quoted.encode("utf-8", "backslashreplace").decode("utf-8"), count


def format_line(fields: Mapping[str, Any]) -> str:
    """`key=value key="quoted value" …` with secrets stripped; None values are left out."""
    parts: list[str] = []
    redactions = 0
    for name, value in fields.items():
        if value is None:
            continue
        if _is_secret_key(name):
            text, count = REDACTED, 1
        else:
            text, count = _value(value)
        redactions += count
        parts.append(f"{_key(name)}={text}")
    if redactions:
        parts.append(f"redacted={redactions}")  # tells the operator something was stripped, and that it is a bug
    return " ".join(parts)


def log_outcome(
    logger: logging.Logger,
    function: str,
    invocation_id: str | None,
    outcome: Outcome,
    *,
    started: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    **fields: Any,
) -> str:
    """Log the invocation's one outcome line at the outcome's level; returns the line.

    `fields` are what an operator needs: notification_id, counts (sent, failed, skipped), status,
    error (code), operation_id (the connector's, on failures), dequeue_count… `started` is a
    time.monotonic() reading taken when the invocation began.
    """
    line_fields: dict[str, Any] = {"outcome": outcome, "function": function, "invocation_id": invocation_id}
    line_fields.update(fields)
    if started is not None:
        line_fields["duration_ms"] = max(0, round((clock() - started) * 1000))
    line = format_line(line_fields)
    logger.log(outcome.level, "%s", line)
    return line


class track:  # lower case: it reads as a verb at the call site, `with telemetry.track(...)`
    """Log one outcome line when the block ends: ok, or the response's status, or the exception.

        with telemetry.track(log, "NotifyFunction", context.invocation_id) as t:
            return t.response(edge.respond(handle))

    An exception is logged as failed (refused if it is an AppError below 500) and re-raised,
    so the host still retries a queue message.
    """

    def __init__(self, logger: logging.Logger, function: str, invocation_id: str | None, *,
                 clock: Callable[[], float] = time.monotonic, **fields: Any) -> None:
        self._logger = logger
        self._function = function
        self._invocation_id = invocation_id
        self._clock = clock
        self._fields: dict[str, Any] = dict(fields)
        self._outcome = Outcome.OK
        self._started = clock()
        self.line = ""

    def set(self, **fields: Any) -> None:
        """Add fields to the outcome line (counts, notification id…)."""
        self._fields.update(fields)

    def refused(self, reason: str, **fields: Any) -> None:
        """The input can never succeed (bad body, message sent to poison): a WARNING line."""
        self._outcome = Outcome.REFUSED
        self._fields.update(fields, reason=reason)

    def failed(self, reason: str, **fields: Any) -> None:
        self._outcome = Outcome.FAILED
        self._fields.update(fields, reason=reason)

    def response(self, response: Any) -> Any:
        """Take status, error code and operation id from an HTTP response (edge's JSON errors); return it."""
        status = int(getattr(response, "status_code", 200))
        self._outcome = outcome_for_status(status)
        self._fields["status"] = status
        if status >= 400:
            try:
                error = json.loads(response.get_body() or b"{}").get("error") or {}
            except (ValueError, AttributeError):
                error = {}
            if isinstance(error, dict):
                self._fields.setdefault("error", error.get("code"))
                self._fields.setdefault("operation_id", error.get("operationId"))
        return response

    def __enter__(self) -> track:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            status = getattr(exc, "status", 500)
            self._outcome = Outcome.REFUSED if isinstance(status, int) and 400 <= status < 500 else Outcome.FAILED
            self._fields.setdefault("error", getattr(exc, "code", None) or type(exc).__name__)
            self._fields.setdefault("operation_id", getattr(exc, "operation_id", None) or None)
        self.line = log_outcome(self._logger, self._function, self._invocation_id, self._outcome,
                                started=self._started, clock=self._clock, **self._fields)


AttributeValue = str | bool | int | float | tuple[str, ...]


def safe_attributes(attributes: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """Span and metric attributes through the same filter as a log line: a secret-named key keeps only
    [redacted], a value holding a credential or a Teams user or conversation id is replaced; None is left out.

    Strings are filtered once each (a cache: the same codes, tenants and notification ids come back)."""
    clean: dict[str, AttributeValue] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if _is_secret_key(key):
            clean[key] = REDACTED
        elif isinstance(value, Enum):
            clean[key] = _safe_text(str(value.value))
        elif isinstance(value, bool | int | float):
            clean[key] = value
        elif isinstance(value, list | tuple | set | frozenset):
            clean[key] = tuple(_safe_text(str(item)) for item in value)
        else:
            clean[key] = _safe_text(str(value))
    return clean


@functools.lru_cache(maxsize=4096)
def _safe_text(text: str) -> str:
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "…"
    return _USER_ID_PATTERN.sub(USER_ID, redact(text)[0])


class RedactingFilter(logging.Filter):
    """Strips credentials from every record a handler emits, not only the outcome lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message, count = redact(record.getMessage())
        message, ids = _USER_ID_PATTERN.subn(USER_ID, message)
        if count or ids:
            record.msg, record.args = message, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))[0]
        return True


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Add RedactingFilter to the handlers of `logger` (the root logger, where the worker's handler is). Idempotent."""
    target = logger if logger is not None else logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def quiet_sdk_loggers(level: int = logging.WARNING) -> None:
    """Raise the Azure SDK and urllib3 loggers to WARNING: their INFO lines are per-request noise that
    carries table keys, and the worker would forward (and Application Insights bill) every one."""
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < level:
            logger.setLevel(level)
