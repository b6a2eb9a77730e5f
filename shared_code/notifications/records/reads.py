"""Read receipts as kept in Table Storage: who read a notification's message, and how many did.

They live in the acknowledgements table (AcknowledgementsTableName), in partitions of their own:
- `d.<encode_key(notification id)>`: one row per recipient who read it (RowKey = the ledger's
  RecipientKey.row_key), created with a conditional insert, so a second receipt (or a retried activity)
  counts once;
- `k.<encode_key(notification id)>`: SHARDS counter rows, each raised by one for every first read of a
  recipient whose key falls in it (an ETag-guarded merge). The status sums them in one query of at most
  SHARDS rows, whatever the audience's size;
- `w.<RecipientKey.row_key>`: per conversation, the latest receipt handled, so a receipt that reads
  nothing new (a repeat, a retry) costs one point read.
encode_key never yields a ".", so none of these can collide with another kind of partition.

Which messages a receipt reads is decided in `after_send.reads`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared_code.notifications.records.ledger import RecipientKey
from shared_code.storage.keys import encode_key
from shared_code.storage.tables import ensure_table, get_many, is_table_missing

READ_PREFIX = "d."
COUNT_PREFIX = "k."
WATERMARK_PREFIX = "w."
WATERMARK_ROW = "receipt"
# Counter rows per notification: a first read writes one of them, so readers arriving together rarely
# race for the same ETag; the status reads all of them at once.
SHARDS = 8
_MAX_TRIES = 50


class ReadStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def add(self, notification_id: str, key: RecipientKey, conversation_id: str, activity_id: str, user_id: str,
            at: datetime) -> bool:
        """Record that `key` (the ledger's recipient) read the notification's message; True the first time.

        Counted as it is recorded; if the count cannot be raised, the record is taken back and the error
        raised, so the channel's retry of the receipt counts it."""
        ensure_table(self._table)
        partition = READ_PREFIX + encode_key(notification_id)
        try:
            self._table.create_entity({
                "PartitionKey": partition, "RowKey": key.row_key, "NotificationId": notification_id,
                "ChannelId": key.channel_id, "ConversationId": key.conversation_id, "ReadIn": conversation_id,
                "ActivityId": activity_id, "UserId": user_id, "ReadAt": at.astimezone(UTC),
            })
        except ResourceExistsError:
            return False
        try:
            self._count_one(notification_id, key)
        except Exception:
            self._table.delete_entity(partition, key.row_key)
            raise
        return True

    def _count_one(self, notification_id: str, key: RecipientKey) -> None:
        partition, row = COUNT_PREFIX + encode_key(notification_id), str(int(key.row_key[:4], 16) % SHARDS)
        for _ in range(_MAX_TRIES):
            try:
                entity = self._table.get_entity(partition, row, select=["Count"])
            except ResourceNotFoundError:
                try:
                    self._table.create_entity({"PartitionKey": partition, "RowKey": row, "Count": 1})
                    return
                except ResourceExistsError:
                    continue
            try:
                self._table.update_entity({"PartitionKey": partition, "RowKey": row,
                                           "Count": int(entity.get("Count") or 0) + 1},
                                          mode=UpdateMode.MERGE, etag=entity.metadata["etag"],
                                          match_condition=MatchConditions.IfNotModified)
                return
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
        raise ResourceModifiedError(f"read count of {notification_id!r} still contended after {_MAX_TRIES} tries")

    def count(self, notification_id: str) -> int:
        """How many recipients read it: one query of at most SHARDS rows."""
        rows = self._table.query_entities("PartitionKey eq @pk",
                                          parameters={"pk": COUNT_PREFIX + encode_key(notification_id)},
                                          select=["Count"])
        try:
            return sum(int(row.get("Count") or 0) for row in rows)
        except ResourceNotFoundError as error:
            if is_table_missing(error):
                return 0
            raise

    def read_many(self, notification_id: str, keys: list[RecipientKey]) -> dict[RecipientKey, datetime]:
        """When each of `keys` read it (those that did), in a few queries."""
        rows = get_many(self._table, READ_PREFIX + encode_key(notification_id), [k.row_key for k in keys],
                        select=["ChannelId", "ConversationId", "ReadAt"])
        return {RecipientKey(r["ChannelId"], r["ConversationId"]): r["ReadAt"] for r in rows
                if isinstance(r.get("ReadAt"), datetime)}

    def watermark(self, conversation: RecipientKey) -> str:
        """The lastReadMessageId of the latest receipt handled in that conversation ("" for none)."""
        try:
            entity = self._table.get_entity(WATERMARK_PREFIX + conversation.row_key, WATERMARK_ROW,
                                            select=["LastReadMessageId"])
        except ResourceNotFoundError:  # none yet, or no table yet
            return ""
        return str(entity.get("LastReadMessageId") or "")

    def save_watermark(self, conversation: RecipientKey, last_read_message_id: str, at: datetime) -> None:
        ensure_table(self._table)
        self._table.upsert_entity({"PartitionKey": WATERMARK_PREFIX + conversation.row_key, "RowKey": WATERMARK_ROW,
                                   "LastReadMessageId": last_read_message_id, "HandledAt": at.astimezone(UTC)},
                                  mode=UpdateMode.REPLACE)


def partitions_of(notification_id: str) -> tuple[str, ...]:
    """The partitions a notification's reads occupy (for retention)."""
    pk = encode_key(notification_id)
    return READ_PREFIX + pk, COUNT_PREFIX + pk
