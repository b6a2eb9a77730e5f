"""Activities and conversation references: Bot Framework JSON in, dataclasses inside, JSON out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from shared_code.plumbing import limits
from shared_code.plumbing.errors import BadInput


@dataclass(frozen=True, slots=True)
class ChannelAccount:
    id: str
    name: str = ""
    aad_object_id: str = ""
    role: str = ""

    @classmethod
    def from_json(cls, data: Any, what: str) -> ChannelAccount:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
            raise BadInput(f"activity.{what}.id is required")
        return cls(
            id=data["id"],
            name=limits.clip(_opt_str(data.get("name")), limits.MAX_NAME_CHARS),
            aad_object_id=_opt_str(data.get("aadObjectId")),
            role=_opt_str(data.get("role")),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.name:
            out["name"] = self.name
        if self.aad_object_id:
            out["aadObjectId"] = self.aad_object_id
        if self.role:
            out["role"] = self.role
        return out


@dataclass(frozen=True, slots=True)
class ConversationAccount:
    id: str
    name: str = ""
    is_group: bool = False
    conversation_type: str = ""
    tenant_id: str = ""

    @classmethod
    def from_json(cls, data: Any) -> ConversationAccount:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
            raise BadInput("activity.conversation.id is required")
        return cls(
            id=data["id"],
            name=limits.clip(_opt_str(data.get("name")), limits.MAX_NAME_CHARS),
            is_group=bool(data.get("isGroup", False)),
            conversation_type=_opt_str(data.get("conversationType")),
            tenant_id=_opt_str(data.get("tenantId")),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.name:
            out["name"] = self.name
        if self.is_group:
            out["isGroup"] = True
        if self.conversation_type:
            out["conversationType"] = self.conversation_type
        if self.tenant_id:
            out["tenantId"] = self.tenant_id
        return out


@dataclass(frozen=True, slots=True)
class ConversationReference:
    """Where a user is: enough to start a message to them later (the seed's "address")."""

    channel_id: str
    service_url: str
    conversation: ConversationAccount
    user: ChannelAccount
    bot: ChannelAccount
    locale: str = ""
    activity_id: str = ""
    tenant_id: str = ""

    @classmethod
    def from_json(cls, data: Any) -> ConversationReference:
        if not isinstance(data, dict):
            raise BadInput("a conversation reference must be a JSON object")
        return cls(
            channel_id=_req_str(data, "channelId"),
            service_url=_req_str(data, "serviceUrl"),
            conversation=ConversationAccount.from_json(data.get("conversation")),
            user=ChannelAccount.from_json(data.get("user"), "user"),
            bot=ChannelAccount.from_json(data.get("bot"), "bot"),
            locale=_opt_str(data.get("locale")),
            activity_id=_opt_str(data.get("activityId")),
            tenant_id=_opt_str(data.get("tenantId")),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "channelId": self.channel_id,
            "serviceUrl": self.service_url,
            "conversation": self.conversation.to_json(),
            "user": self.user.to_json(),
            "bot": self.bot.to_json(),
        }
        if self.locale:
            out["locale"] = self.locale
        if self.activity_id:
            out["activityId"] = self.activity_id
        if self.tenant_id:
            out["tenantId"] = self.tenant_id
        return out


@dataclass(frozen=True, slots=True)
class Activity:
    """An incoming activity: the fields the bot reads, plus the whole JSON as `raw`."""

    type: str
    id: str
    channel_id: str
    service_url: str
    conversation: ConversationAccount
    from_: ChannelAccount
    recipient: ChannelAccount
    text: str = ""
    locale: str = ""
    action: str = ""
    members_added: tuple[ChannelAccount, ...] = ()
    members_removed: tuple[ChannelAccount, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Any) -> Activity:
        if not isinstance(data, dict):
            raise BadInput("the activity must be a JSON object")
        kind = data.get("type")
        if not isinstance(kind, str) or not kind:
            raise BadInput("activity.type is required")
        return _within_limits(cls(
            type=kind,
            id=_opt_str(data.get("id")),
            channel_id=_req_str(data, "channelId"),
            service_url=_req_str(data, "serviceUrl"),
            conversation=ConversationAccount.from_json(data.get("conversation")),
            from_=ChannelAccount.from_json(data.get("from"), "from"),
            recipient=ChannelAccount.from_json(data.get("recipient"), "recipient"),
            text=_opt_str(data.get("text")),
            locale=_opt_str(data.get("locale")),
            action=_opt_str(data.get("action")),
            members_added=_accounts(data.get("membersAdded"), "membersAdded"),
            members_removed=_accounts(data.get("membersRemoved"), "membersRemoved"),
            raw=data,
        ))

    @property
    def tenant_id(self) -> str:
        tenant = ((self.raw.get("channelData") or {}).get("tenant") or {}) if isinstance(self.raw.get("channelData"), dict) else {}
        return self.conversation.tenant_id or _opt_str(tenant.get("id") if isinstance(tenant, dict) else "")


def _within_limits(activity: Activity) -> Activity:
    """An incoming activity whose ids fit what is stored (limits.py); display names are clipped on parsing."""
    checks = [(activity.type, "activity.type", limits.MAX_ID_CHARS),
              (activity.id, "activity.id", limits.MAX_ACTIVITY_ID_CHARS),
              (activity.channel_id, "activity.channelId", limits.MAX_ID_CHARS),
              (activity.service_url, "activity.serviceUrl", limits.MAX_URL_CHARS),
              (activity.locale, "activity.locale", limits.MAX_LOCALE_CHARS),
              (activity.action, "activity.action", limits.MAX_ID_CHARS),
              (activity.tenant_id, "activity.tenantId", limits.MAX_ID_CHARS),
              (activity.conversation.id, "activity.conversation.id", limits.MAX_ID_CHARS),
              (activity.conversation.conversation_type, "activity.conversation.conversationType", limits.MAX_ID_CHARS)]
    accounts = [("from", activity.from_), ("recipient", activity.recipient)]
    accounts += [("membersAdded", m) for m in activity.members_added] + [("membersRemoved", m) for m in activity.members_removed]
    for what, account in accounts:
        checks += [(account.id, f"activity.{what}.id", limits.MAX_ID_CHARS),
                   (account.aad_object_id, f"activity.{what}.aadObjectId", limits.MAX_ID_CHARS),
                   (account.role, f"activity.{what}.role", limits.MAX_ID_CHARS)]
    for value, what, max_chars in checks:
        limits.identifier(value, what, max_chars)
    try:
        parts = urlsplit(activity.service_url)
    except ValueError:  # e.g. an unclosed [IPv6] host
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInput("activity.serviceUrl must be an absolute http(s) URL")
    return activity


def reference_from_activity(activity: Activity) -> ConversationReference:
    """The address of the user who sent `activity`: user = from, bot = recipient."""
    return ConversationReference(
        channel_id=activity.channel_id,
        service_url=activity.service_url,
        conversation=activity.conversation,
        user=activity.from_,
        bot=activity.recipient,
        locale=activity.locale,
        activity_id=activity.id,
        tenant_id=activity.tenant_id,
    )


def message_to(
    reference: ConversationReference,
    text: str = "",
    *,
    locale: str | None = None,
    reply_to_id: str = "",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A message activity from the bot to the user at `reference` (proactive when no reply_to_id)."""
    activity: dict[str, Any] = {
        "type": "message",
        "from": reference.bot.to_json(),
        "recipient": reference.user.to_json(),
        "conversation": reference.conversation.to_json(),
        "channelId": reference.channel_id,
        "serviceUrl": reference.service_url,
    }
    if text:
        activity["text"] = text
    effective_locale = reference.locale if locale is None else locale
    if effective_locale:
        activity["locale"] = effective_locale
    if reply_to_id:
        activity["replyToId"] = reply_to_id
    if extra:
        activity.update(extra)
    return activity


def _req_str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise BadInput(f"activity.{key} is required")
    return value


def _opt_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _accounts(value: Any, what: str) -> tuple[ChannelAccount, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadInput(f"activity.{what} must be a list")
    return tuple(ChannelAccount.from_json(item, what) for item in value)


# --- Teams: scopes, mentions, the team an activity comes from ------------------------------------

GROUP_SCOPES = frozenset({"groupChat", "channel"})


@dataclass(frozen=True, slots=True)
class TeamInfo:
    """`channelData.team` of a Teams activity: the team the conversation belongs to."""

    id: str
    name: str = ""
    aad_group_id: str = ""


def scope_of(conversation: ConversationAccount) -> str:
    """`personal`, `groupChat` or `channel`. Channels other than Teams send no conversationType:
    a group conversation (`isGroup`) counts as a group chat, anything else as personal."""
    if conversation.conversation_type:
        return conversation.conversation_type
    return "groupChat" if conversation.is_group else "personal"


def is_group_scope(conversation: ConversationAccount) -> bool:
    return scope_of(conversation) in GROUP_SCOPES


def with_user(reference: ConversationReference, user: ChannelAccount) -> ConversationReference:
    """The same address with another user (a group's address keeps the user it was first saved with)."""
    return replace(reference, user=user)


def channel_data(activity: Activity) -> dict[str, Any]:
    data = activity.raw.get("channelData")
    return data if isinstance(data, dict) else {}


def team_of(activity: Activity) -> TeamInfo | None:
    """The team of a Teams channel activity, or None (a personal or group chat, another channel)."""
    team = channel_data(activity).get("team")
    if not isinstance(team, dict) or not isinstance(team.get("id"), str) or not team["id"]:
        return None
    return TeamInfo(id=team["id"], name=_opt_str(team.get("name")), aad_group_id=_opt_str(team.get("aadGroupId")))


def event_type(activity: Activity) -> str:
    """`channelData.eventType` (Teams: teamMemberAdded, teamRenamed, channelCreated, ...)."""
    return _opt_str(channel_data(activity).get("eventType"))


def strip_recipient_mention(activity: Activity) -> str:
    """The text without the bot's own mention: each `mention` entity of the recipient's id has its
    exact `text` (`<at>Bot</at>`) cut out, as the channel put it in the message; other mentions stay."""
    text = activity.text
    entities = activity.raw.get("entities")
    if not isinstance(entities, list):
        return text.strip()
    for entity in entities:
        if not isinstance(entity, dict) or entity.get("type") != "mention":
            continue
        mentioned = entity.get("mentioned")
        if not isinstance(mentioned, dict) or mentioned.get("id") != activity.recipient.id:
            continue
        mention_text = entity.get("text")
        if not isinstance(mention_text, str) or not mention_text:
            mention_text = f"<at>{_opt_str(mentioned.get('name'))}</at>"
        text = _remove_ignoring_case(text, mention_text)
    return text.strip()


def _remove_ignoring_case(text: str, part: str) -> str:
    return re.sub(re.escape(part), "", text, flags=re.IGNORECASE)
