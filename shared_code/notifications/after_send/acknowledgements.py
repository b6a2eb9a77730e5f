"""Acknowledgements and reactions: a click on a notification's acknowledge button (counted once per
conversation), and the reactions to what was sent, attributed to the notification that sent the message.

Only the conversation of the authenticated activity can acknowledge, and only a notification the
ledger says was sent to it: the button's data names the notification, never who clicked. What is kept,
and how, is `records.acknowledgements`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from shared_code.notifications.records import ledger_reads
from shared_code.notifications.records.acknowledgements import Acknowledgement, How
from shared_code.notifications.records.ledger import RecipientKey
from shared_code.protocol.activity import Activity
from shared_code.protocol.content import ACK_VERB, acknowledged_card

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices

log = logging.getLogger(__name__)

# Reactions come soon after a message: a reaction is attributed to a notification created this recently.
REACTION_WINDOW = timedelta(days=30)
MAX_ID_LENGTH = 200
THREAD_MARK = ";messageid="


class AckOutcome(StrEnum):
    RECORDED = "recorded"
    ALREADY = "already"  # counted before: clicking twice counts once
    UNKNOWN_NOTIFICATION = "unknown_notification"
    NOT_A_RECIPIENT = "not_a_recipient"


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


def acknowledge(notification_id: str, how: How, activity: Activity, services: NotificationServices) -> AckResult:
    """Record that the conversation `activity` came from acknowledged `notification_id`, once.

    `activity` must be the authenticated one: its channel and conversation say who clicked."""
    notification = services.notifications.get(notification_id)
    if notification is None:
        log.warning("acknowledgement refused: no notification %r (channel %s)", notification_id, activity.channel_id)
        return AckResult(AckOutcome.UNKNOWN_NOTIFICATION)
    deliveries = services.ledger.table
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


def record_reaction(activity: Activity, services: NotificationServices) -> int:
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


def reacted_notification(key: RecipientKey, activity_id: str, services: NotificationServices) -> str:
    """The notification that sent message `activity_id` to `key`'s conversation ("" for none).

    Looked up, not indexed: an index row per sent message would be one more table write for every
    message of every broadcast (ten times today's 0.09 operations per message), for the few that get
    a reaction. The lookup costs nothing per send: the recent notifications, newest first (reactions
    come soon after the message), then one ledger range query each until the message is found."""
    deliveries = services.ledger.table
    for notification_id in services.notifications.created_since(services.clock() - REACTION_WINDOW):
        if ledger_reads.sent_as(deliveries, notification_id, key, activity_id):
            return notification_id
    return ""
