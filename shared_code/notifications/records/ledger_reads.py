"""Read-only queries over the delivery ledger that depend only on its keys' stable parts.

A notification's ledger rows have a PartitionKey that starts with `encode_key(notification id)`
and a RowKey that is `RecipientKey.row_key`; what follows the prefix (today `.<page>`) is the
fan-out's business and may change. So these read a partition *range* and keep the rows whose
partition is the prefix followed by a character no encoded key holds (the separator).
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from shared_code.notifications.records.ledger import DeliveryState, RecipientKey
from shared_code.storage.keys import encode_key
from shared_code.storage.tables import is_table_missing

# encode_key's alphabet (base64url, and the "~" marker of a hashed key): a separator is anything else.
_KEY_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_~")
# Above every separator the ledger may use ("." today): the range ends before it.
_RANGE_END = "~"


def _range(notification_id: str) -> tuple[str, dict[str, Any], str]:
    prefix = encode_key(notification_id)
    return "PartitionKey ge @low and PartitionKey lt @high", {"low": prefix, "high": prefix + _RANGE_END}, prefix


def _belongs(partition: str, prefix: str) -> bool:
    """Is `partition` one of this notification's, not of another whose encoded id starts the same?"""
    if not partition.startswith(prefix):
        return False
    rest = partition[len(prefix):]
    return rest == "" or rest[0] not in _KEY_CHARACTERS


def deliveries(table: TableClient, notification_id: str, *, page_size: int = 1000,
               select: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Every ledger row of a notification, a page at a time (never all of them in memory)."""
    query, parameters, prefix = _range(notification_id)
    rows = table.query_entities(query, parameters=parameters, results_per_page=page_size, select=select)
    try:
        for row in rows:
            if _belongs(row["PartitionKey"], prefix):
                yield row
    except ResourceNotFoundError as error:
        if not is_table_missing(error):
            raise


def was_sent(table: TableClient, notification_id: str, key: RecipientKey) -> bool:
    """Did the ledger record a sent message of this notification to `key`'s conversation?"""
    return _sent(table, notification_id, key, "", {})


def sent_as(table: TableClient, notification_id: str, key: RecipientKey, activity_id: str) -> bool:
    """Was `activity_id` the message this notification sent to `key`'s conversation?"""
    return _sent(table, notification_id, key, " and ActivityId eq @activity", {"activity": activity_id})


def sent_rows(table: TableClient, notification_id: str, keys: list[RecipientKey]) -> list[dict[str, Any]]:
    """This notification's ledger rows of a sent message to any of `keys` (one query, whatever its pages)."""
    return _sent_rows(table, notification_id, keys, "", {})


def _sent(table: TableClient, notification_id: str, key: RecipientKey, clause: str, extra: dict[str, str]) -> bool:
    return bool(_sent_rows(table, notification_id, [key], clause, extra))


def _sent_rows(table: TableClient, notification_id: str, keys: list[RecipientKey], clause: str,
               extra: dict[str, str]) -> list[dict[str, Any]]:
    query, parameters, prefix = _range(notification_id)
    by_row = {key.row_key: key for key in keys}
    # Spaces around the parentheses: the SDK finds parameters by splitting the filter on spaces.
    rows_clause = " or ".join(f"RowKey eq @row{i}" for i in range(len(by_row)))
    rows = table.query_entities(f"{query} and ( {rows_clause} ){clause}",
                                parameters={**parameters, **{f"row{i}": r for i, r in enumerate(by_row)}, **extra},
                                select=["PartitionKey", "RowKey", "ChannelId", "ConversationId", "State",
                                        "ActivityId", "SentTo"])
    try:
        return [row for row in rows if _belongs(row["PartitionKey"], prefix)
                and row.get("State") == DeliveryState.SENT.value and row["RowKey"] in by_row
                and [row.get("ChannelId"), row.get("ConversationId")] == by_row[row["RowKey"]].to_json()]
    except ResourceNotFoundError as error:
        if is_table_missing(error):
            return []
        raise
