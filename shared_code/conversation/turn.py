"""The bot's turn: authenticate an incoming activity, remember the user's address, answer through the dialogs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from shared_code.conversation import dialogs
from shared_code.conversation.main_dialog import ASK_NAME
from shared_code.plumbing.errors import Unauthorized
from shared_code.protocol import invoke
from shared_code.protocol.activity import (
    Activity,
    ConversationAccount,
    ConversationReference,
    event_type,
    is_group_scope,
    message_to,
    reference_from_activity,
    strip_recipient_mention,
    team_of,
)
from shared_code.storage.teams import Team

if TYPE_CHECKING:
    from shared_code.conversation.ports import ConversationServices

log = logging.getLogger(__name__)

WELCOME = "Hello user, good to meet you! I now know your address and can send you notifications in the future."
# The greeting carries the main dialog's first question, so a new user gets one message, not two.
GREETING = f"{WELCOME} {ASK_NAME}"
# A group chat or channel is greeted once, as a group: no question to everyone in it.
GROUP_WELCOME = ("Hello everyone, good to meet you! I now know this conversation's address and can send "
                 "notifications here. Mention me to talk to me.")
REMOVAL_ACTIONS = {"remove", "remove-upgrade"}
# Activities that say nothing to answer but show where a user is: saved as a message's address is.
ADDRESS_ONLY_TYPES = {"invoke", "messageReaction"}

# A layer above may answer an authenticated activity (a card's button, say) before the dialogs see it:
# (activity, authenticated) -> its answer, or None to let the turn go on as usual.
Intercept = Callable[[Activity, bool], "invoke.InvokeResponse | None"]


def on_activity(data: Any, authorization: str | None, services: ConversationServices, *,
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
    elif activity.type in ADDRESS_ONLY_TYPES:
        save_address(activity, reference, authenticated, services)
    elif answer is None:
        log.info("ignored a %s activity", activity.type)
    if answer is None and activity.type == "invoke":
        return invoke.not_implemented(invoke.invoke_name(activity.raw))
    return answer


def reply(activity: Activity, reference: ConversationReference, text: str, services: ConversationServices, *, trusted: bool) -> None:
    outgoing = message_to(reference, text, locale=activity.locale or None)
    if activity.id:
        services.connector.reply_to_activity(reference, activity.id, outgoing, trusted=trusted, retries=2)
    else:
        services.connector.send_to_conversation(reference, outgoing, trusted=trusted, retries=2)


def save_address(activity: Activity, reference: ConversationReference, trusted: bool, services: ConversationServices) -> bool:
    """Save or refresh the address `activity` came from (a group's keeps its user); True if new."""
    team = team_of(activity)
    return services.addresses.save(reference, trusted=trusted, team_id=team.id if team else "")


def _on_message(activity: Activity, reference: ConversationReference, trusted: bool, services: ConversationServices) -> None:
    group = is_group_scope(activity.conversation)
    # In a group the bot is spoken to with a mention: `<at>Bot</at> survey` is the command `survey`.
    text = strip_recipient_mention(activity) if group else activity.text
    is_new = save_address(activity, reference, trusted, services)
    # The dialog state is saved before anything is sent: a turn re-run after a conflict says nothing twice.
    texts = dialogs.handle_message(reference, text, services, activity_id=activity.id)
    if is_new:
        texts = _greeted(texts, GROUP_WELCOME if group else WELCOME)
    for text in texts:
        reply(activity, reference, text, services, trusted=trusted)


def _greeted(texts: tuple[str, ...], welcome: str = WELCOME) -> tuple[str, ...]:
    """The welcome, joined to the first thing the dialogs say (their first question)."""
    if not texts:
        return (welcome,)
    return (f"{welcome} {texts[0]}", *texts[1:])


def _greet_new(activity: Activity, reference: ConversationReference, trusted: bool, services: ConversationServices) -> None:
    """Save the address of a conversation the bot was just added to; greet it if it is new.
    A person is greeted with the main dialog's first question; a group once, as a group."""
    if not save_address(activity, reference, trusted, services):
        return
    if services.addresses.installed_by_the_app(reference):
        return  # the app installed itself for this person to bring them a notification: that is its hello
    if is_group_scope(activity.conversation):
        reply(activity, reference, GROUP_WELCOME, services, trusted=trusted)
        return
    # An empty text on an empty stack begins the main dialog: its first question joins the welcome.
    for text in _greeted(dialogs.handle_message(reference, "", services)):
        reply(activity, reference, text, services, trusted=trusted)


def _save_team(activity: Activity, reference: ConversationReference, trusted: bool, services: ConversationServices) -> None:
    team = team_of(activity)
    if team is None:
        return
    root = ConversationAccount(
        id=_channel_of(activity.conversation.id), name=activity.conversation.name, is_group=True,
        conversation_type="channel", tenant_id=activity.tenant_id,
    )
    services.teams.save(Team(
        id=team.id, name=team.name, aad_group_id=team.aad_group_id, tenant_id=activity.tenant_id,
        root=replace(reference, conversation=root, activity_id=""), service_url_trusted=trusted,
    ))
    log.info("the bot is installed in a team; the team is saved")


def _remove_team(activity: Activity, reason: str, services: ConversationServices) -> None:
    team = team_of(activity)
    if team is None:
        return
    services.teams.mark_uninstalled(team.id)
    marked = services.addresses.deactivate_team(team.id, _channel_of(activity.conversation.id), reason)
    log.info("the bot was uninstalled from a team; %d of its addresses are now inactive", marked)


def _channel_of(conversation_id: str) -> str:
    """A Teams thread's channel: `19:...@thread.tacv2;messageid=123` -> `19:...@thread.tacv2`."""
    return conversation_id.split(";messageid=", 1)[0]


def _on_conversation_update(
    activity: Activity, reference: ConversationReference, trusted: bool, services: ConversationServices
) -> None:
    bot_id = activity.recipient.id
    if any(member.id == bot_id for member in activity.members_removed):
        services.addresses.deactivate(activity.channel_id, activity.conversation.id, "bot removed (membersRemoved)")
        _remove_team(activity, "bot removed from the team (membersRemoved)", services)
        log.info("the bot was removed from a conversation; its address is now inactive")
        return
    if event_type(activity) == "teamRenamed" and (team := team_of(activity)) is not None:
        if not services.teams.rename(team.id, team.name):
            _save_team(activity, reference, trusted, services)  # installed before teams were saved
        return
    if not activity.members_added:
        return
    bot_added = any(m.id == bot_id for m in activity.members_added)
    if is_group_scope(activity.conversation):
        if bot_added:
            _save_team(activity, reference, trusted, services)
            _greet_new(activity, reference, trusted, services)
        else:
            # Someone joined a group the bot is in: the group's address is refreshed (its user kept), nobody greeted.
            save_address(activity, reference, trusted, services)
        return
    # The user is the member who was added; when only the bot was, the person who added it.
    added_users = [m for m in activity.members_added if m.id != bot_id]
    _greet_new(activity, replace(reference, user=added_users[0] if added_users else activity.from_), trusted, services)


def _on_installation_update(
    activity: Activity, reference: ConversationReference, trusted: bool, services: ConversationServices
) -> None:
    if activity.action in REMOVAL_ACTIONS:
        reason = f"bot removed (installationUpdate {activity.action})"
        services.addresses.deactivate(activity.channel_id, activity.conversation.id, reason)
        _remove_team(activity, reason, services)
    elif activity.action in ("add", "add-upgrade"):
        _save_team(activity, reference, trusted, services)
        # Teams sends this and a conversationUpdate on an install, in either order: the first greets.
        _greet_new(activity, reference, trusted, services)
