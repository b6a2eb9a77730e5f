"""An activity at /api/messages: the bot's turn, with what happens after a send (acknowledgements,
reactions, read receipts) handled here, above both the conversation and the notifications."""

from __future__ import annotations

from typing import Any

from shared_code.app.services import Services
from shared_code.conversation import turn
from shared_code.notifications.after_send import acknowledgements, reads
from shared_code.notifications.records.acknowledgements import How
from shared_code.protocol import invoke
from shared_code.protocol.activity import Activity, reference_from_activity

ACKNOWLEDGED_REPLY = "Thanks, your acknowledgement is recorded."
REFUSED = "This acknowledgement could not be recorded."


def on_activity(data: Any, authorization: str | None, services: Services) -> invoke.InvokeResponse | None:
    """Run the turn; an acknowledge click, a reaction or a read receipt is recorded on the way (once
    authenticated: the turn refuses anything else before it gets here)."""
    return turn.on_activity(data, authorization, services,
                            intercept=lambda activity, trusted: after_send(activity, trusted, services))


def after_send(activity: Activity, trusted: bool, services: Services) -> invoke.InvokeResponse | None:
    if activity.type == "messageReaction":
        acknowledgements.record_reaction(activity, services)
        return None  # the turn goes on (the address is the turn's business)
    if reads.is_receipt(activity):
        last_read = reads.last_read(activity)
        if last_read is not None:
            reads.record_receipt(activity, last_read, services)
        return invoke.HANDLED  # an event, not an invoke: 200 with no body, whatever its value held
    clicked = acknowledgements.clicked_notification(activity)
    if clicked is None:
        return None
    notification_id, how = clicked
    result = acknowledgements.acknowledge(notification_id, how, activity, services)
    if how is How.INVOKE:
        if not result.counted:
            # Said the same for both refusals: a forged click learns nothing about the notification.
            return invoke.error(403, "AcknowledgementRefused", REFUSED)
        return invoke.card(result.card or {})
    if result.outcome is acknowledgements.AckOutcome.RECORDED:
        # A submit has no answer of its own to show: a short reply says the click was taken.
        turn.reply(activity, reference_from_activity(activity), ACKNOWLEDGED_REPLY, services, trusted=trusted)
    return invoke.HANDLED
