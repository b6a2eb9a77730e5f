"""The bot's turn: authenticate an incoming activity, remember the user's address, answer through the dialogs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared_code.conversation import dialogs
from shared_code.conversation.main_dialog import ASK_NAME
from shared_code.plumbing.errors import Unauthorized
from shared_code.protocol import invoke
from shared_code.protocol.activity import Activity, ConversationReference, message_to, reference_from_activity

if TYPE_CHECKING:  # the composition root sits above every package: named in annotations only
    from shared_code.app.services import Services

log = logging.getLogger(__name__)

WELCOME = "Hello user, good to meet you! I now know your address and can send you notifications in the future."
# The greeting carries the main dialog's first question, so a new user gets one message, not two.
GREETING = f"{WELCOME} {ASK_NAME}"
REMOVAL_ACTIONS = {"remove", "remove-upgrade"}

# A layer above may answer an authenticated activity (a card's button, say) before the dialogs see it:
# (activity, authenticated) -> its answer, or None to let the turn go on as usual.
Intercept = Callable[[Activity, bool], "invoke.InvokeResponse | None"]


def on_activity(data: Any, authorization: str | None, services: Services, *,
                intercept: Intercept | None = None) -> invoke.InvokeResponse | None:
    """Handle one activity posted to /api/messages. Raises BadInput/Unauthorized; stores nothing then.
    Returns the HTTP answer when there is one to give: every invoke gets one (501 when nobody handled it)."""
    settings = services.settings
    if not settings.local_mode and not authorization:
        raise Unauthorized("missing Authorization header")
    activity = Activity.from_json(data)
    authenticated = False
    if not settings.local_mode:
        services.inbound_auth.authenticate(authorization, activity)
        authenticated = True
    reference = reference_from_activity(activity)
    answer = intercept(activity, authenticated) if intercept is not None else None
    if activity.type == "message":
        if answer is None:  # a message answered above (a card's submit) is not for the dialogs
            _on_message(activity, reference, authenticated, services)
    elif activity.type == "conversationUpdate":
        _on_conversation_update(activity, reference, authenticated, services)
    elif activity.type == "installationUpdate":
        _on_installation_update(activity, reference, authenticated, services)
    elif answer is None:
        log.info("ignored a %s activity", activity.type)
    if answer is None and activity.type == "invoke":
        return invoke.not_implemented(invoke.invoke_name(activity.raw))
    return answer


def reply(activity: Activity, reference: ConversationReference, text: str, services: Services, *, trusted: bool) -> None:
    outgoing = message_to(reference, text, locale=activity.locale or None)
    if activity.id:
        services.connector.reply_to_activity(reference, activity.id, outgoing, trusted=trusted, retries=2)
    else:
        services.connector.send_to_conversation(reference, outgoing, trusted=trusted, retries=2)


def _on_message(activity: Activity, reference: ConversationReference, trusted: bool, services: Services) -> None:
    is_new = services.addresses.save(reference, trusted=trusted)
    # The dialog state is saved before anything is sent: a turn re-run after a conflict says nothing twice.
    texts = dialogs.handle_message(reference, activity.text, services, activity_id=activity.id)
    if is_new:
        texts = _greeted(texts)
    for text in texts:
        reply(activity, reference, text, services, trusted=trusted)


def _greeted(texts: tuple[str, ...]) -> tuple[str, ...]:
    """The welcome, joined to the first thing the dialogs say (their first question)."""
    if not texts:
        return (WELCOME,)
    return (f"{WELCOME} {texts[0]}", *texts[1:])


def _on_conversation_update(
    activity: Activity, reference: ConversationReference, trusted: bool, services: Services
) -> None:
    bot_id = activity.recipient.id
    if any(member.id == bot_id for member in activity.members_removed):
        services.addresses.deactivate(activity.channel_id, activity.conversation.id, "bot removed (membersRemoved)")
        log.info("the bot was removed from a conversation; its address is now inactive")
        return
    if activity.members_added:
        # The user is the member who was added; when only the bot was, the person who added it.
        added_users = [m for m in activity.members_added if m.id != bot_id]
        user = added_users[0] if added_users else activity.from_
        saved = ConversationReference(
            channel_id=reference.channel_id,
            service_url=reference.service_url,
            conversation=reference.conversation,
            user=user,
            bot=reference.bot,
            locale=reference.locale,
            activity_id=reference.activity_id,
            tenant_id=reference.tenant_id,
        )
        if services.addresses.save(saved, trusted=trusted):
            # An empty text on an empty stack begins the main dialog: its first question joins the welcome.
            for text in _greeted(dialogs.handle_message(saved, "", services)):
                reply(activity, saved, text, services, trusted=trusted)


def _on_installation_update(
    activity: Activity, reference: ConversationReference, trusted: bool, services: Services
) -> None:
    if activity.action in REMOVAL_ACTIONS:
        services.addresses.deactivate(activity.channel_id, activity.conversation.id, f"bot removed (installationUpdate {activity.action})")
    elif activity.action in ("add", "add-upgrade"):
        services.addresses.save(reference, trusted=trusted)
