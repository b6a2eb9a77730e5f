"""Table Storage keys: any channel's ids made safe for PartitionKey/RowKey, and back."""

from __future__ import annotations

import base64
import hashlib

# Keys may hold up to 1 KiB; ids longer than this are hashed instead (the raw id is
# always stored as a property too, so nothing depends on decoding a hashed key).
_MAX_ENCODED = 512
_HASHED = "~"


def encode_key(value: str) -> str:
    """A key with none of the characters Table Storage forbids (`/ \\ # ?`, controls).

    base64url keeps every id distinct and reversible; long ids become a SHA-256
    digest with a marker, which no base64url output can start with.
    """
    raw = value.encode("utf-8", "surrogatepass")
    encoded = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
    if len(encoded) <= _MAX_ENCODED:
        return encoded
    return _HASHED + hashlib.sha256(raw).hexdigest()


def decode_key(key: str) -> str | None:
    """The id behind `key`, or None for a hashed key (read the id property instead)."""
    if key.startswith(_HASHED):
        return None
    padded = key + "=" * (-len(key) % 4)
    return base64.urlsafe_b64decode(padded).decode("utf-8", "surrogatepass")
