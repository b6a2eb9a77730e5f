"""Limits: what the app accepts from outside (well-formed, bounded text and JSON) and what a table row holds.

Every edge reads JSON through `loads` (HTTP bodies, queue messages): valid JSON, no
NaN/Infinity, at most MAX_JSON_DEPTH levels, and no string or key holding a lone UTF-16
surrogate. Python's json accepts `"\\ud800"`, but the text cannot be encoded as UTF-8: the
connector's request, a log line or a table read fails later, after something was stored.
The field checks (`identifier`, `clip`, `moment`) and the size checks (`utf16_len`,
`MAX_PROPERTY_CHARS`) do the rest. README.md ("Limits") lists the numbers.

Over-long free text that a user types or is called (a display name, an answer) is never a
reason to refuse their message: it is clipped with `clip`, everywhere the same way.
Anything else out of bounds (ids, locales, dates, sizes) is refused with BadInput.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from shared_code.plumbing.errors import BadInput

MAX_JSON_DEPTH = 64  # Adaptive Cards nest a dozen levels; thousands only crash parsers
MAX_ID_CHARS = 1024  # conversation, user, bot, channel, tenant and audience ids
MAX_ACTIVITY_ID_CHARS = 8192  # some channels send long activity ids; the dialog state keeps only a digest
MAX_URL_CHARS = 2048  # serviceUrl
MAX_LOCALE_CHARS = 64  # "en-US"; BCP 47 tags with extensions stay far below
MAX_NAME_CHARS = 256  # display names (user, bot, conversation): clipped
MAX_ANSWER_CHARS = 1000  # what the bot keeps or repeats of what a user typed (answers, echoes): clipped
# Table Storage holds 64 KiB per string property (32,768 UTF-16 units) and 1 MiB per entity.
MAX_PROPERTY_CHARS = 32_000
ELLIPSIS = "…"
# Table Storage's DateTime range starts in 1601; the end keeps a margin for date arithmetic.
EARLIEST = datetime(1601, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def loads(body: bytes | str, what: str, *, not_json: str = "") -> Any:
    """JSON from outside, checked by `check_json`; BadInput says what is wrong (`not_json` for bad syntax)."""
    try:
        value = json.loads(body, parse_constant=_no_constant)
    except RecursionError:
        raise BadInput(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise BadInput(not_json or f"{what} is not valid JSON") from None
    check_json(value, what)
    return value


def check_json(value: Any, what: str) -> None:
    """BadInput if `value` nests deeper than MAX_JSON_DEPTH or holds a string or key that is not
    well-formed Unicode. Iterative: a hostile document cannot exhaust the stack here."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "$")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            if not is_well_formed(item):
                raise BadInput(f"{what} holds text that is not well-formed Unicode (a lone surrogate) at {path}")
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise BadInput(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            for key, child in item.items():
                if not is_well_formed(key):
                    raise BadInput(f"{what} has a key that is not well-formed Unicode (a lone surrogate) at {path}")
                if isinstance(child, (str, dict, list)):
                    stack.append((child, depth + 1, f"{path}.{clip(key, 40)}"))
        else:
            stack.extend((child, depth + 1, f"{path}[{index}]") for index, child in enumerate(item)
                         if isinstance(child, (str, dict, list)))


def is_well_formed(text: str) -> bool:
    """No lone surrogate: the text encodes as UTF-8 (and so as JSON for Table Storage and the connector)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def utf16_len(text: str) -> int:
    """Length as Table Storage counts it: UTF-16 code units (a character beyond U+FFFF counts twice)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def fitting(text: str, what: str, max_chars: int = MAX_PROPERTY_CHARS) -> str:
    """`text` if Table Storage can hold it in one string property (UTF-16 units); BadInput otherwise."""
    if utf16_len(text) > max_chars:
        raise BadInput(f"{what} is longer than {max_chars} characters as stored")
    return text


def identifier(value: str, what: str, max_chars: int = MAX_ID_CHARS) -> str:
    """`value` if it is well-formed and at most `max_chars` long; BadInput naming `what` otherwise."""
    if len(value) > max_chars:
        raise BadInput(f"{what} is longer than {max_chars} characters")
    if not is_well_formed(value):
        raise BadInput(f"{what} is not well-formed Unicode (a lone surrogate)")
    return value


def clip(text: str, max_chars: int) -> str:
    """`text` cut to `max_chars` characters, the last one an ellipsis when something was cut."""
    if len(text) <= max_chars:
        return text
    return text[: max_chars - 1] + ELLIPSIS


def moment(value: datetime, what: str) -> datetime:
    """A zoned time within EARLIEST..LATEST (UTC); BadInput for one that cannot be stored or compared."""
    try:
        as_utc = value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise BadInput(f"{what} is outside the supported range ({EARLIEST.year} to {LATEST.year - 1}, UTC)") from None
    if not EARLIEST <= as_utc < LATEST:
        raise BadInput(f"{what} is outside the supported range ({EARLIEST.year} to {LATEST.year - 1}, UTC)")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
