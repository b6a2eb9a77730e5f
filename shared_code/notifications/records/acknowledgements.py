"""Acknowledgements and reactions as kept in Table Storage (AcknowledgementsTableName).

One table, three kinds of partition:
- `encode_key(notification id)`: one row per acknowledging conversation (RowKey = RecipientKey.row_key),
  created with a conditional insert, so a second click (or a retried request) counts once;
- `r.<RecipientKey.row_key>`: the reactions of one conversation, one row per (message, user);
- `q.<encode_key(notification id)>`: the reactions to a notification's messages, one row per (message, user).
  encode_key never yields a ".", so none can collide.

Who may acknowledge, and which notification a reaction belongs to, is decided in `after_send.acknowledgements`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared_code.notifications.records.ledger import RecipientKey
from shared_code.storage.keys import encode_key
from shared_code.storage.tables import ensure_table, get_many, is_table_missing

REACTION_PREFIX = "r."
NOTIFICATION_REACTION_PREFIX = "q."


class How(StrEnum):
    INVOKE = "invoke"  # Action.Execute: an adaptiveCard/action invoke
    MESSAGE = "message"  # Action.Submit: a message whose value is the button's data


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    notification_id: str
    key: RecipientKey
    user_id: str
    user_name: str
    how: How
    at: datetime


class AcknowledgementStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def add(self, ack: Acknowledgement) -> bool:
        """True if this is the conversation's first acknowledgement of the notification."""
        ensure_table(self._table)
        try:
            self._table.create_entity({
                "PartitionKey": encode_key(ack.notification_id), "RowKey": ack.key.row_key,
                "NotificationId": ack.notification_id, "ChannelId": ack.key.channel_id,
                "ConversationId": ack.key.conversation_id, "UserId": ack.user_id, "UserName": ack.user_name,
                "How": ack.how.value, "AcknowledgedAt": ack.at.astimezone(UTC),
            })
            return True
        except ResourceExistsError:
            return False

    def acknowledged_at(self, notification_id: str, key: RecipientKey) -> datetime | None:
        try:
            entity = self._table.get_entity(encode_key(notification_id), key.row_key, select=["AcknowledgedAt"])
        except ResourceNotFoundError:
            return None
        at = entity.get("AcknowledgedAt")
        return at if isinstance(at, datetime) else None

    def acknowledged_many(self, notification_id: str, keys: list[RecipientKey]) -> dict[RecipientKey, datetime]:
        """When each of `keys` acknowledged (those that did), in a few queries."""
        rows = get_many(self._table, encode_key(notification_id), [k.row_key for k in keys],
                        select=["ChannelId", "ConversationId", "AcknowledgedAt"])
        return {RecipientKey(r["ChannelId"], r["ConversationId"]): r["AcknowledgedAt"] for r in rows
                if isinstance(r.get("AcknowledgedAt"), datetime)}

    def count(self, notification_id: str) -> int:
        """How many conversations acknowledged."""
        return self._count_partition(encode_key(notification_id))

    def _count_partition(self, partition: str) -> int:
        """How many rows a partition holds: keys only, a page at a time."""
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": partition},
                                          select=["RowKey"], results_per_page=1000)
        try:
            return sum(1 for _ in rows)
        except ResourceNotFoundError as error:
            if is_table_missing(error):
                return 0
            raise

    def add_reaction(self, key: RecipientKey, reply_to_id: str, user_id: str, reaction: str, at: datetime) -> None:
        ensure_table(self._table)
        self._table.upsert_entity({
            "PartitionKey": REACTION_PREFIX + key.row_key, "RowKey": _reaction_row(reply_to_id, user_id),
            "ChannelId": key.channel_id, "ConversationId": key.conversation_id, "ReplyToId": reply_to_id,
            "UserId": user_id, "Reaction": reaction[:100], "ReactedAt": at.astimezone(UTC),
        }, mode=UpdateMode.REPLACE)

    def add_notification_reaction(self, notification_id: str, key: RecipientKey, reply_to_id: str, user_id: str,
                                  reaction: str, at: datetime) -> None:
        ensure_table(self._table)
        self._table.upsert_entity({
            "PartitionKey": NOTIFICATION_REACTION_PREFIX + encode_key(notification_id),
            "RowKey": _reaction_row(reply_to_id, user_id), "NotificationId": notification_id,
            "ChannelId": key.channel_id, "ConversationId": key.conversation_id, "ReplyToId": reply_to_id,
            "UserId": user_id, "Reaction": reaction[:100], "ReactedAt": at.astimezone(UTC),
        }, mode=UpdateMode.REPLACE)

    def purge_reactions(self, before: datetime, *, page_size: int = 100) -> int:
        """Delete the reactions kept by conversation that were made before `before`; how many went."""
        deleted = 0
        try:
            # Every `r.` partition and no other: "." + 1 is "/" (encode_key never yields either).
            rows = self._table.query_entities(
                "PartitionKey ge @low and PartitionKey lt @high and ReactedAt lt @before",
                parameters={"low": REACTION_PREFIX, "high": REACTION_PREFIX[:-1] + "/", "before": before.astimezone(UTC)},
                select=["PartitionKey", "RowKey"], results_per_page=page_size)
            for page in rows.by_page():
                by_partition: dict[str, list[tuple[str, dict[str, str]]]] = {}
                for row in page:
                    by_partition.setdefault(row["PartitionKey"], []).append(
                        ("delete", {"PartitionKey": row["PartitionKey"], "RowKey": row["RowKey"]}))
                for batch in by_partition.values():  # a transaction holds one partition
                    self._table.submit_transaction(batch)
                    deleted += len(batch)
        except HttpResponseError as error:
            if not is_table_missing(error):
                raise
        return deleted

    def reaction_count(self, notification_id: str) -> int:
        """How many (message, user) reactions a notification's messages got."""
        return self._count_partition(NOTIFICATION_REACTION_PREFIX + encode_key(notification_id))

    def reaction(self, key: RecipientKey, activity_id: str) -> str:
        """The latest reaction to one of our messages in that conversation ("" for none)."""
        if not activity_id:
            return ""
        rows = self._table.query_entities(
            "PartitionKey eq @pk and ReplyToId eq @reply",
            parameters={"pk": REACTION_PREFIX + key.row_key, "reply": activity_id}, select=["Reaction", "ReactedAt"])
        try:
            found = sorted(rows, key=lambda r: r.get("ReactedAt") or datetime.min.replace(tzinfo=UTC))
        except ResourceNotFoundError as error:
            if is_table_missing(error):
                return ""
            raise
        return str(found[-1].get("Reaction") or "") if found else ""


def _reaction_row(reply_to_id: str, user_id: str) -> str:
    raw = json.dumps([reply_to_id, user_id], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
