"""Read receipts: Teams' `application/vnd.microsoft.readReceipt` event in a personal chat marks as read every
notification message delivered to that chat up to its `lastReadMessageId`; each recipient counts once.

Only the conversation the (authenticated) activity came from is affected: the receipt names a message id,
never a chat, and a ledger row counts only when its message went to that very conversation. What is kept,
and how, is `records.reads`.

Which notifications sent to the chat is looked up, not indexed, as for reactions (see
`acknowledgements.reacted_notification`): an index row per sent message would be one more table write for
every message of every broadcast, where a receipt costs one point read when it reads nothing new (a repeat,
a retry) and otherwise one ledger query per notification created in the window (its pages in one range).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shared_code.notifications.after_send.acknowledgements import MAX_ID_LENGTH, REACTION_WINDOW
from shared_code.notifications.records import ledger_reads
from shared_code.notifications.records.ledger import RecipientKey
from shared_code.plumbing.limits import is_well_formed
from shared_code.protocol.activity import Activity, is_group_scope

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices

log = logging.getLogger(__name__)

READ_RECEIPT = "application/vnd.microsoft.readReceipt"
# A message is read soon after it is sent, as it is reacted to: receipts look at notifications this recent.
READ_WINDOW = REACTION_WINDOW


def is_receipt(activity: Activity) -> bool:
    return activity.type == "event" and activity.raw.get("name") == READ_RECEIPT


def last_read(activity: Activity) -> str | None:
    """The `lastReadMessageId` of a well-formed read receipt from a personal chat; None otherwise."""
    value = activity.raw.get("value")
    last = value.get("lastReadMessageId") if isinstance(value, dict) else None
    if not isinstance(last, str) or not 0 < len(last) <= MAX_ID_LENGTH or not is_well_formed(last):
        return None
    if is_group_scope(activity.conversation):
        return None  # Teams sends receipts in personal chats only: one member's read is not a group's
    return last


def is_read(activity_id: str, last_read_id: str) -> bool:
    """Is the message `activity_id` at or before `last_read_id`? Numeric ids (Teams' personal chats) compare
    as numbers; any other id is read only by a receipt that names it exactly."""
    if _numeric(activity_id) and _numeric(last_read_id):
        return int(activity_id) <= int(last_read_id)
    return bool(activity_id) and activity_id == last_read_id


def _numeric(value: str) -> bool:
    return value.isascii() and value.isdigit()


def _reads_more(last_read_id: str, before: str) -> bool:
    """Can a receipt up to `last_read_id` read anything one up to `before` did not?"""
    if _numeric(last_read_id) and _numeric(before):
        return int(last_read_id) > int(before)
    return last_read_id != before


def record_receipt(activity: Activity, last_read_id: str, services: NotificationServices) -> int:
    """Mark read every notification message delivered to the activity's conversation up to `last_read_id`;
    returns how many recipients were counted for the first time."""
    conversation = RecipientKey(activity.channel_id, activity.conversation.id)
    reads = services.reads
    if not _reads_more(last_read_id, reads.watermark(conversation)):
        return 0
    # The ledger knows a conversation by itself, or a person (a team's member, someone of the organisation)
    # by who they are, with the chat their message went to (`SentTo`): the ledger row must name this chat.
    keys = list(dict.fromkeys(RecipientKey(activity.channel_id, who) for who in
                              (activity.conversation.id, activity.from_.id, activity.from_.aad_object_id) if who))
    at, counted = services.clock(), 0
    for notification_id in services.notifications.created_since(at - READ_WINDOW):
        for row in ledger_reads.sent_rows(services.ledger.table, notification_id, keys):
            chat = row.get("SentTo") or row["ConversationId"]
            activity_id = str(row.get("ActivityId") or "")
            if chat != activity.conversation.id or not is_read(activity_id, last_read_id):
                continue
            key = RecipientKey(row["ChannelId"], row["ConversationId"])
            counted += reads.add(notification_id, key, chat, activity_id, activity.from_.id, at)
    reads.save_watermark(conversation, last_read_id, at)
    if counted:
        log.info("read receipt: %d notification message(s) read (channel %s)", counted, activity.channel_id)
    return counted
