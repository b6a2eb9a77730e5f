"""Message content: text, cards and suggested actions, optionally one per locale, chosen per recipient."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared_code.plumbing.errors import BadInput

# The connector refuses bigger activities (MessageSizeTooBig, about 28 KB on Teams).
MAX_CONTENT_BYTES = 28 * 1024
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
ACTION_TYPES = {"imBack", "postBack", "messageBack", "openUrl", "call", "showImage", "downloadFile", "signin"}


@dataclass(frozen=True, slots=True)
class Content:
    text: str = ""
    attachments: tuple[dict[str, Any], ...] = ()
    suggested_actions: dict[str, Any] | None = None

    def activity_fields(self) -> dict[str, Any]:
        """The fields of a message activity that carry this content."""
        fields: dict[str, Any] = {}
        if self.text:
            fields["text"] = self.text
        if self.attachments:
            fields["attachments"] = [dict(a) for a in self.attachments]
        if self.suggested_actions:
            fields["suggestedActions"] = self.suggested_actions
        return fields


@dataclass(frozen=True, slots=True)
class LocalizedContent:
    """One Content per locale key ("en", "fr-CA", ...), or a single Content under the key ""."""

    by_locale: dict[str, Content]
    default_locale: str = ""

    def for_locale(self, locale: str | None) -> Content:
        """Exact locale, then same language, then the caller's default, then the only/first one."""
        if "" in self.by_locale:
            return self.by_locale[""]
        return self.by_locale[best_locale(self.by_locale, locale, self.default_locale)]


def best_locale(keys: Iterable[str], locale: str | None, default: str = "") -> str:
    """Which of `keys` serves `locale`: the exact locale, then the same language (case-insensitive),
    then `default`, then the first key. `keys` must not be empty."""
    ordered = list(keys)
    lowered = {key.lower(): key for key in ordered}
    wanted = (locale or "").lower()
    language = wanted.split("-")[0]
    if wanted in lowered:
        return lowered[wanted]
    if language in lowered:
        return lowered[language]
    for key in ordered:
        if language and key.lower().split("-")[0] == language:
            return key
    return lowered.get(default.lower(), ordered[0])


def parse_content(data: dict[str, Any]) -> LocalizedContent:
    """Read `text` / `attachments` / `suggestedActions` from a request or job; each of them may be
    a map from locale to value. `defaultLocale` names the fallback. BadInput says what is wrong."""
    text, attachments, actions = data.get("text"), data.get("attachments"), data.get("suggestedActions")
    default_locale = data.get("defaultLocale") or ""
    if not isinstance(default_locale, str):
        raise BadInput("defaultLocale must be a string such as en-US")
    localized_keys: set[str] = set()
    for name, value in (("text", text), ("attachments", attachments), ("suggestedActions", actions)):
        if _is_locale_map(value, name):
            localized_keys |= set(value)
    if not localized_keys:
        content = _content(text, attachments, actions)
        return LocalizedContent({"": content}, default_locale)
    by_locale = {}
    for key in sorted(localized_keys):
        by_locale[key] = _content(_pick(text, key, "text"), _pick(attachments, key, "attachments"),
                                  _pick(actions, key, "suggestedActions"))
    if default_locale and default_locale not in by_locale:
        raise BadInput(f"defaultLocale {default_locale!r} is not one of the locales given")
    return LocalizedContent(by_locale, default_locale)


def _is_locale_map(value: Any, name: str) -> bool:
    if name in ("text", "attachments"):
        return isinstance(value, dict)
    # suggestedActions is itself an object: it is a locale map when it has no "actions" key.
    return isinstance(value, dict) and "actions" not in value and bool(value)


def _pick(value: Any, key: str, name: str) -> Any:
    return value.get(key) if _is_locale_map(value, name) else value


def _content(text: Any, attachments: Any, actions: Any) -> Content:
    if text is not None and not isinstance(text, str):
        raise BadInput("text must be a string, or a map from locale to string")
    parsed_attachments = _attachments(attachments)
    parsed_actions = _suggested_actions(actions)
    if not (text and text.strip()) and not parsed_attachments:
        raise BadInput("a message needs text or attachments (for every locale given)")
    content = Content(text or "", parsed_attachments, parsed_actions)
    if len(json.dumps(content.activity_fields()).encode()) > MAX_CONTENT_BYTES:
        raise BadInput(f"the message is larger than {MAX_CONTENT_BYTES} bytes")
    return content


def _attachments(value: Any) -> tuple[dict[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadInput("attachments must be a list")
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("contentType"), str) or not item["contentType"]:
            raise BadInput(f"attachments[{index}] needs a contentType")
        if "content" not in item and not isinstance(item.get("contentUrl"), str):
            raise BadInput(f"attachments[{index}] needs content or a contentUrl")
        if item["contentType"] == ADAPTIVE_CARD:
            card = item.get("content")
            if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
                raise BadInput(f'attachments[{index}] is not an Adaptive Card ("type": "AdaptiveCard" expected)')
            if not isinstance(card.get("version", "1.0"), str):
                raise BadInput(f"attachments[{index}].content.version must be a string")
        allowed = {"contentType", "content", "contentUrl", "name", "thumbnailUrl"}
        out.append({k: v for k, v in item.items() if k in allowed})
    return tuple(out)


def _suggested_actions(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("actions"), list) or not value["actions"]:
        raise BadInput('suggestedActions must be {"actions": [...]}')
    for index, action in enumerate(value["actions"]):
        if not isinstance(action, dict) or action.get("type") not in ACTION_TYPES or not action.get("title") and not action.get("value"):
            raise BadInput(f"suggestedActions.actions[{index}] needs a known type and a title or value")
    return {"actions": [dict(a) for a in value["actions"]], **({"to": value["to"]} if "to" in value else {})}


# --- acknowledgements: the button a notification carries when it asks for one -------------------
ACK_VERB = "ack"
ACK_DEFAULT_TITLE = "Acknowledge"
ACKNOWLEDGED_TEXT = "✅ Acknowledged"
# Action.Execute needs Adaptive Cards 1.4; an older client falls back to the Action.Submit.
EXECUTE_CARD_VERSION = "1.4"


def ack_data(notification_id: str) -> dict[str, str]:
    """What the click sends back: the same for the invoke (value.action.data) and the message (value)."""
    return {"verb": ACK_VERB, "notification": notification_id}


def ack_action(notification_id: str, title: str) -> dict[str, Any]:
    return {"type": "Action.Execute", "title": title, "verb": ACK_VERB, "data": ack_data(notification_id),
            "fallback": {"type": "Action.Submit", "title": title, "data": ack_data(notification_id)}}


def with_acknowledgement(content: Content, notification_id: str, title: str) -> Content:
    """`content` with an acknowledge button: added to its first Adaptive Card, else to a card of its own.

    Plain text becomes the card's text rather than a second part: Teams may split text plus a card
    into two messages and return no activity id for them."""
    action = ack_action(notification_id, title)
    attachments = list(content.attachments)
    for index, attachment in enumerate(attachments):
        card = attachment.get("content")
        if attachment.get("contentType") == ADAPTIVE_CARD and isinstance(card, dict):
            actions = card.get("actions") if isinstance(card.get("actions"), list) else []
            attachments[index] = {**attachment, "content": {**card, "actions": [*actions, action]}}
            return Content(content.text, tuple(attachments), content.suggested_actions)
    body = [{"type": "TextBlock", "text": content.text, "wrap": True}] if content.text and not attachments else []
    card = {"type": "AdaptiveCard", "version": EXECUTE_CARD_VERSION, "body": body, "actions": [action]}
    text = content.text if attachments else ""
    return Content(text, (*attachments, {"contentType": ADAPTIVE_CARD, "content": card}), content.suggested_actions)


def acknowledged_card(content: Content) -> dict[str, Any]:
    """The card a click turns into: the message's card without the acknowledge button, and a line saying so.
    `content` is what with_acknowledgement made for that recipient."""
    card: dict[str, Any] = {"type": "AdaptiveCard", "version": EXECUTE_CARD_VERSION, "body": []}
    for attachment in content.attachments:
        if attachment.get("contentType") == ADAPTIVE_CARD and isinstance(attachment.get("content"), dict):
            card = dict(attachment["content"])
            if any(_is_ack(a) for a in card.get("actions") or []):
                break
    actions = [a for a in card.get("actions") or [] if not _is_ack(a)]
    body = [*(card.get("body") or []), {"type": "TextBlock", "text": ACKNOWLEDGED_TEXT, "weight": "Bolder",
                                        "color": "Good", "wrap": True}]
    out = {**card, "body": body}
    if actions:
        out["actions"] = actions
    else:
        out.pop("actions", None)
    return out


def _is_ack(action: Any) -> bool:
    return isinstance(action, dict) and action.get("verb") == ACK_VERB and action.get("type") == "Action.Execute"


def check_size(content: Content) -> None:
    """BadInput when `content` no longer fits one message (after a button was added, say)."""
    if len(json.dumps(content.activity_fields()).encode()) > MAX_CONTENT_BYTES:
        raise BadInput(f"the message is larger than {MAX_CONTENT_BYTES} bytes")
