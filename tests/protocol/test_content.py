"""Message content: cards and suggested actions validated, per-locale text chosen per recipient."""

from __future__ import annotations

import pytest

from shared_code.plumbing.errors import BadInput
from shared_code.protocol.content import (
    ADAPTIVE_CARD,
    MAX_CONTENT_BYTES,
    Content,
    acknowledged_card,
    parse_content,
    with_acknowledgement,
)

CARD = {"contentType": ADAPTIVE_CARD,
        "content": {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "Hi"}]}}


def test_plain_text_is_the_same_for_every_locale():
    content = parse_content({"text": "hello"})

    assert content.for_locale("fr-FR").text == "hello"
    assert content.for_locale(None).text == "hello"


def test_a_card_is_carried_intact_as_an_attachment():
    content = parse_content({"attachments": [CARD]}).for_locale("en-US")

    assert content.activity_fields() == {"attachments": [CARD]}


def test_suggested_actions_are_carried_with_text():
    actions = {"actions": [{"type": "imBack", "title": "Yes", "value": "yes"}]}

    fields = parse_content({"text": "Ready?", "suggestedActions": actions}).for_locale("en").activity_fields()

    assert fields == {"text": "Ready?", "suggestedActions": actions}


@pytest.mark.parametrize(
    ("locale", "expected"),
    [("en-US", "Hello"), ("fr-FR", "Bonjour"), ("fr-CA", "Bonjour"), ("FR", "Bonjour"), ("de-DE", "Hello"), (None, "Hello")],
)
def test_each_recipient_gets_the_text_for_their_locale_then_language_then_default(locale, expected):
    content = parse_content({"text": {"en": "Hello", "fr": "Bonjour"}, "defaultLocale": "en"})

    assert content.for_locale(locale).text == expected


def test_exact_locale_wins_over_language():
    content = parse_content({"text": {"fr": "Bonjour", "fr-CA": "Allô"}, "defaultLocale": "fr"})

    assert content.for_locale("fr-CA").text == "Allô"
    assert content.for_locale("fr-BE").text == "Bonjour"


def test_localized_cards_follow_the_same_rule():
    french = {"contentType": ADAPTIVE_CARD, "content": {"type": "AdaptiveCard", "version": "1.5", "body": []}}

    content = parse_content({"attachments": {"en": [CARD], "fr": [french]}, "defaultLocale": "en"})

    assert content.for_locale("fr-CA").attachments == (french,)
    assert content.for_locale("ja-JP").attachments == (CARD,)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "text or attachments"),
        ({"text": "  "}, "text or attachments"),
        ({"text": 3}, "text must be"),
        ({"attachments": "card"}, "must be a list"),
        ({"attachments": [{"content": {}}]}, "contentType"),
        ({"attachments": [{"contentType": ADAPTIVE_CARD}]}, "content or a contentUrl"),
        ({"attachments": [{"contentType": ADAPTIVE_CARD, "content": {"type": "HeroCard"}}]}, "Adaptive Card"),
        ({"attachments": [{"contentType": ADAPTIVE_CARD, "content": "{\"type\": \"AdaptiveCard\"}"}]}, "Adaptive Card"),
        ({"text": "x", "suggestedActions": {"actions": [{"type": "teleport", "title": "go"}]}}, "known type"),
        ({"text": "x", "suggestedActions": {"actions": []}}, "suggestedActions"),
        ({"text": {"en": "Hello"}, "defaultLocale": "fr"}, "defaultLocale"),
        ({"text": "x" * (MAX_CONTENT_BYTES + 1)}, "larger than"),
        ({"attachments": [{"contentType": ADAPTIVE_CARD, "content": {"type": "AdaptiveCard", "body": ["x" * MAX_CONTENT_BYTES]}}]}, "larger than"),
    ],
)
def test_bad_content_is_refused_with_the_reason(body, message):
    with pytest.raises(BadInput) as raised:
        parse_content(body)

    assert message in raised.value.message


def _card(actions: list | None = None) -> dict:
    content = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "Release 42"}]}
    if actions is not None:
        content["actions"] = actions
    return {"contentType": "application/vnd.microsoft.card.adaptive", "content": content}


def test_the_ack_button_joins_the_first_adaptive_cards_own_actions():
    notes = {"type": "Action.OpenUrl", "title": "Notes", "url": "https://example.com"}
    content = with_acknowledgement(Content("see below", (_card([notes]),)), "n-1", "Got it")

    assert content.text == "see below"
    [attachment] = content.attachments
    assert [a["type"] for a in attachment["content"]["actions"]] == ["Action.OpenUrl", "Action.Execute"]
    assert attachment["content"]["actions"][1]["data"] == {"verb": "ack", "notification": "n-1"}


def test_the_ack_button_gets_a_card_of_its_own_next_to_other_attachments():
    hero = {"contentType": "application/vnd.microsoft.card.hero", "content": {"title": "Hi"}}
    content = with_acknowledgement(Content("", (hero,)), "n-2", "OK")

    assert [a["contentType"] for a in content.attachments] == [hero["contentType"], "application/vnd.microsoft.card.adaptive"]
    assert content.attachments[1]["content"]["actions"][0]["fallback"]["type"] == "Action.Submit"


def test_the_acknowledged_card_keeps_the_content_and_other_actions_but_not_the_button():
    notes = {"type": "Action.OpenUrl", "title": "Notes", "url": "https://example.com"}
    card = acknowledged_card(with_acknowledgement(Content("", (_card([notes]),)), "n-3", "Got it"))

    assert card["actions"] == [notes]
    assert [b["text"] for b in card["body"]] == ["Release 42", "✅ Acknowledged"]
