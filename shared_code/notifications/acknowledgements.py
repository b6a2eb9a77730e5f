"""Acknowledgements: who clicked a notification's acknowledge button (once each), and reactions to what was sent.

One table (AcknowledgementsTableName), two kinds of partition:
- `encode_key(notification id)`: one row per acknowledging conversation (RowKey = RecipientKey.row_key),
  created with a conditional insert, so a second click (or a retried request) counts once;
- `r.<RecipientKey.row_key>`: the reactions of one conversation, one row per (message, user);
- `q.<encode_key(notification id)>`: the reactions to a notification's messages, one row per (message, user).
  encode_key never yields a ".", so none can collide.

Only the conversation of the authenticated activity can acknowledge, and only a notification the
ledger says was sent to it: the button's data names the notification, never who clicked.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared_code.notifications import ledger_reads
from shared_code.notifications.ledger import RecipientKey
from shared_code.protocol.activity import Activity
from shared_code.protocol.content import ACK_VERB, acknowledged_card
from shared_code.storage.keys import encode_key
from shared_code.storage.tables import ensure_table, get_many, is_table_missing

if TYPE_CHECKING:  # the composition root sits above every package: named in annotations only
    from shared_code.app.services import Services

log = logging.getLogger(__name__)

REACTION_PREFIX = "r."
NOTIFICATION_REACTION_PREFIX = "q."
# Reactions come soon after a message: a reaction is attributed to a notification created this recently.
REACTION_WINDOW = timedelta(days=30)
MAX_ID_LENGTH = 200
THREAD_MARK = ";messageid="


class How(StrEnum):
    INVOKE = "invoke"  # Action.Execute: an adaptiveCard/action invoke
    MESSAGE = "message"  # Action.Submit: a message whose value is the button's data


class AckOutcome(StrEnum):
    RECORDED = "recorded"
    ALREADY = "already"  # counted before: clicking twice counts once
    UNKNOWN_NOTIFICATION = "unknown_notification"
    NOT_A_RECIPIENT = "not_a_recipient"


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    notification_id: str
    key: RecipientKey
    user_id: str
    user_name: str
    how: How
    at: datetime


@dataclass(frozen=True, slots=True)
class AckResult:
    outcome: AckOutcome
    card: dict[str, Any] | None = None  # the card as acknowledged, for the invoke response

    @property
    def counted(self) -> bool:
        return self.outcome in (AckOutcome.RECORDED, AckOutcome.ALREADY)


def clicked_notification(activity: Activity) -> tuple[str, How] | None:
    """The notification an acknowledge click names, and how it came; None when it is no such click."""
    value = activity.raw.get("value")
    if activity.type == "invoke" and activity.raw.get("name") == "adaptiveCard/action" and isinstance(value, dict):
        action = value.get("action")
        if isinstance(action, dict) and action.get("verb") == ACK_VERB:
            return _named(action.get("data"), How.INVOKE)
        return None
    if activity.type == "message" and isinstance(value, dict) and value.get("verb") == ACK_VERB:
        return _named(value, How.MESSAGE)
    return None


def _named(data: Any, how: How) -> tuple[str, How] | None:
    notification = data.get("notification") if isinstance(data, dict) else None
    if isinstance(notification, str) and 0 < len(notification) <= MAX_ID_LENGTH:
        return notification, how
    return None


def acknowledge(notification_id: str, how: How, activity: Activity, services: Services) -> AckResult:
    """Record that the conversation `activity` came from acknowledged `notification_id`, once.

    `activity` must be the authenticated one: its channel and conversation say who clicked."""
    notification = services.notifications.get(notification_id)
    if notification is None:
        log.warning("acknowledgement refused: no notification %r (channel %s)", notification_id, activity.channel_id)
        return AckResult(AckOutcome.UNKNOWN_NOTIFICATION)
    deliveries = services.table_service.get_table_client(services.settings.deliveries_table)
    key = next((k for k in _recipient_keys(activity) if ledger_reads.was_sent(deliveries, notification_id, k)), None)
    if key is None:
        log.warning("acknowledgement refused: notification %r was not sent to the clicking conversation "
                    "(channel %s)", notification_id, activity.channel_id)
        return AckResult(AckOutcome.NOT_A_RECIPIENT)
    recorded = services.acknowledgements.add(Acknowledgement(
        notification_id, key, activity.from_.id, activity.from_.name, how, services.clock()))
    content = notification.job.localized().for_locale(activity.locale or notification.job.locale)
    return AckResult(AckOutcome.RECORDED if recorded else AckOutcome.ALREADY, acknowledged_card(content))


def _recipient_keys(activity: Activity) -> list[RecipientKey]:
    """The conversation a click came from, as the ledger may know it: a click on a post in a Teams
    channel comes from the thread (`<channel conversation>;messageid=<post>`), the post went to the channel."""
    conversation = activity.conversation.id
    keys = [RecipientKey(activity.channel_id, conversation)]
    if THREAD_MARK in conversation:
        keys.append(RecipientKey(activity.channel_id, conversation.split(THREAD_MARK, 1)[0]))
    return keys


def record_reaction(activity: Activity, services: Services) -> int:
    """Keep the reactions added to one of our messages (a messageReaction); returns how many were kept.

    Kept by conversation and message (the report's column), and, when the message is one a notification
    sent, for that notification too (its status counts them): see `reacted_notification`."""
    reply_to = activity.raw.get("replyToId")
    added = activity.raw.get("reactionsAdded")
    if not isinstance(reply_to, str) or not reply_to or not isinstance(added, list):
        return 0
    types = [r.get("type") for r in added if isinstance(r, dict) and isinstance(r.get("type"), str) and r.get("type")]
    if not types:
        return 0
    key = RecipientKey(activity.channel_id, activity.conversation.id)
    at = services.clock()
    services.acknowledgements.add_reaction(key, reply_to, activity.from_.id, types[-1], at)
    notification_id = reacted_notification(key, reply_to, services)
    if notification_id:
        services.acknowledgements.add_notification_reaction(notification_id, key, reply_to, activity.from_.id,
                                                            types[-1], at)
    return len(types)


def reacted_notification(key: RecipientKey, activity_id: str, services: Services) -> str:
    """The notification that sent message `activity_id` to `key`'s conversation ("" for none).

    Looked up, not indexed: an index row per sent message would be one more table write for every
    message of every broadcast (ten times today's 0.09 operations per message), for the few that get
    a reaction. The lookup costs nothing per send: the recent notifications, newest first (reactions
    come soon after the message), then one ledger range query each until the message is found."""
    deliveries = services.table_service.get_table_client(services.settings.deliveries_table)
    for notification_id in services.notifications.created_since(services.clock() - REACTION_WINDOW):
        if ledger_reads.sent_as(deliveries, notification_id, key, activity_id):
            return notification_id
    return ""


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
