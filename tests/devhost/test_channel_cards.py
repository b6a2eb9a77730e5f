"""The local chat's cards: their text printed as lines, their buttons numbered and pressed with `/click N` as
Teams would press them, and `/read` sending Teams' read receipt."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests

from devhost.channel import LocalChannel, Repl
from stubs.server import StubResponse
from tests.support.bots import RecordingBot

ACK = {"verb": "ack", "notification": "policy-1"}
CARD = {"contentType": "application/vnd.microsoft.card.adaptive", "content": {
    "type": "AdaptiveCard", "version": "1.4",
    "body": [{"type": "TextBlock", "text": "Read the new policy"},
             {"type": "Container", "items": [{"type": "FactSet", "facts": [{"title": "Due", "value": "Friday"}]}]}],
    "actions": [{"type": "Action.OpenUrl", "title": "Policy", "url": "https://example.com/policy"},
                {"type": "Action.Submit", "title": "Later", "data": {"verb": "later"}},
                {"type": "Action.Execute", "title": "Got it", "verb": "ack", "data": ACK}]}}
ACKNOWLEDGED = {"statusCode": 200, "type": "application/vnd.microsoft.card.adaptive",
                "value": {"type": "AdaptiveCard", "body": [{"type": "TextBlock", "text": "✅ Acknowledged"}]}}


def acknowledging(activity: dict) -> StubResponse:
    """An invoke is answered with the acknowledged card, anything else with 200."""
    return StubResponse(200, ACKNOWLEDGED if activity["type"] == "invoke" else None)


@pytest.fixture
def chat() -> Iterator[tuple[LocalChannel, Repl, RecordingBot, io.StringIO]]:
    bot, out = RecordingBot(acknowledging), io.StringIO()
    bot.server.start()
    with LocalChannel(f"{bot.server.url}/api/messages", out=out) as channel:
        repl = Repl(channel, "http://localhost/api/notify")
        repl.handle("/user alice")
        yield channel, repl, bot, out
    bot.server.stop()


def bot_sends(channel: LocalChannel, activity: dict) -> str:
    """The bot posts `activity` to the current user's chat; the id the channel gave it."""
    url = f"{channel.service_url}/v3/conversations/{quote(channel.user.conversation_id, safe='')}/activities"
    sent = requests.post(url, json={"type": "message", **activity}, timeout=5)
    sent.raise_for_status()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and channel.last_message.get(channel.user.conversation_id) != sent.json()["id"]:
        time.sleep(0.01)
    return sent.json()["id"]


def test_a_card_is_printed_as_its_text_lines_and_numbered_buttons(chat):
    channel, _, _, out = chat

    bot_sends(channel, {"attachments": [CARD]})

    assert out.getvalue().splitlines()[-6:] == [
        "bot: (card)", "    Read the new policy", "    Due: Friday",
        "  [1] Policy -> https://example.com/policy", "  [2] Later", "  [3] Got it"]


def test_click_on_an_execute_button_sends_the_card_action_invoke_and_prints_the_new_card(chat):
    channel, repl, bot, out = chat
    card_id = bot_sends(channel, {"attachments": [CARD]})

    repl.handle("/click 3")

    invoke = bot.received[-1]
    assert (invoke["type"], invoke["name"], invoke["replyToId"]) == ("invoke", "adaptiveCard/action", card_id)
    assert invoke["value"] == {"action": {"type": "Action.Execute", "verb": "ack", "data": ACK}, "trigger": "manual"}
    assert invoke["conversation"]["id"] == channel.user.conversation_id
    assert out.getvalue().splitlines()[-2:] == ["(the card is now:)", "    ✅ Acknowledged"]


def test_click_on_a_submit_button_sends_a_message_with_its_data_in_reply_to_the_card(chat):
    channel, repl, bot, _ = chat
    card_id = bot_sends(channel, {"attachments": [CARD]})

    repl.handle("/click 2")

    message = bot.received[-1]
    assert (message["type"], message["value"], message["replyToId"]) == ("message", {"verb": "later"}, card_id)
    assert "text" not in message


def test_click_on_an_open_url_button_prints_the_url_and_sends_nothing(chat):
    channel, repl, bot, out = chat
    bot_sends(channel, {"attachments": [CARD]})
    before = len(bot.received)

    repl.handle("/click 1")

    assert len(bot.received) == before
    assert out.getvalue().splitlines()[-1] == "(opens https://example.com/policy)"


def test_read_sends_teams_read_receipt_for_the_latest_bot_message(chat):
    channel, repl, bot, _ = chat
    bot_sends(channel, {"text": "first"})
    latest = bot_sends(channel, {"text": "second"})

    repl.handle("/read")

    receipt = bot.received[-1]
    assert (receipt["type"], receipt["name"], receipt["value"]) == (
        "event", "application/vnd.microsoft.readReceipt", {"lastReadMessageId": latest})
    assert int(latest) > 0  # Teams' ids in a personal chat are numbers, compared as such
