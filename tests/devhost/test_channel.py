"""The local chat channel against a tiny echo bot over HTTP: what it sends, what it prints."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests

from devhost.channel import LocalChannel, Repl, curl_lines, notify_url_for
from stubs.server import StubResponse
from tests.support.bots import RecordingBot


def echo(activity: dict) -> StubResponse:
    """Answers every message by posting "echo: <text>" to the activity's serviceUrl, as a bot replies."""
    if activity["type"] == "message":
        conversation = activity["conversation"]["id"]
        reply = {"type": "message", "text": f"echo: {activity['text']}", "from": activity["recipient"],
                 "recipient": activity["from"], "conversation": activity["conversation"],
                 "replyToId": activity["id"]}
        url = f"{activity['serviceUrl']}/v3/conversations/{quote(conversation, safe='')}/activities/{activity['id']}"
        requests.post(url, json=reply, timeout=5).raise_for_status()
    return StubResponse(200)


@pytest.fixture
def bot() -> Iterator[RecordingBot]:
    echoing = RecordingBot(echo)
    echoing.server.start()
    yield echoing
    echoing.server.stop()


def wait_for_text(out: io.StringIO, text: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and text not in out.getvalue():
        time.sleep(0.02)
    return out.getvalue()


def test_channel_sends_well_formed_message_activity_and_prints_the_reply(bot: RecordingBot) -> None:
    out = io.StringIO()
    with LocalChannel(f"{bot.server.url}/api/messages", out=out) as channel:
        user = channel.switch("alice")
        response = channel.say("hi there")
        printed = wait_for_text(out, "echo: hi there")

    message = bot.received[-1]
    assert response is not None and response.status_code == 200
    assert {k: message[k] for k in ("type", "channelId", "serviceUrl", "locale", "text")} == {
        "type": "message", "channelId": "localchat", "serviceUrl": channel.service_url, "locale": "en-US",
        "text": "hi there"}
    assert message["conversation"] == {"id": user.conversation_id}
    assert message["from"] == {"id": user.id, "name": "alice"}
    assert message["recipient"] == {"id": "bot", "name": "Bot"}
    assert message["id"] and message["timestamp"].endswith("Z")
    assert "bot: echo: hi there" in printed
    assert "Authorization" not in bot.headers[-1]


def test_channel_new_user_joins_with_conversation_update(bot: RecordingBot) -> None:
    with LocalChannel(f"{bot.server.url}/api/messages", out=io.StringIO()) as channel:
        user = channel.switch("bob")
        channel.switch("bob")  # switching back to a known user does not join again

    assert [a["type"] for a in bot.received] == ["conversationUpdate"]
    assert bot.received[0]["membersAdded"] == [{"id": user.id, "name": "bob"}, {"id": "bot", "name": "Bot"}]


def test_channel_prints_proactive_message_nobody_asked_for(bot: RecordingBot) -> None:
    out = io.StringIO()
    with LocalChannel(f"{bot.server.url}/api/messages", out=out) as channel:
        alice = channel.switch("alice")
        channel.switch("carol")
        url = f"{channel.service_url}/v3/conversations/{quote(alice.conversation_id, safe='')}/activities"
        requests.post(url, json={"type": "message", "text": "Reminder!"}, timeout=5).raise_for_status()
        printed = wait_for_text(out, "Reminder!")

    assert "bot (to alice): Reminder!" in printed


def test_channel_sign_hook_sets_authorization_header(bot: RecordingBot) -> None:
    signed: list[str] = []

    def sign(activity: dict) -> str:
        signed.append(activity["type"])
        return "Bearer test-token"

    with LocalChannel(f"{bot.server.url}/api/messages", out=io.StringIO(), sign=sign) as channel:
        channel.switch("dave")
        channel.say("hello")

    assert [h.get("Authorization") for h in bot.headers] == ["Bearer test-token", "Bearer test-token"]
    assert signed == ["conversationUpdate", "message"]


def test_channel_repl_switches_users_and_quits(bot: RecordingBot) -> None:
    out = io.StringIO()
    with LocalChannel(f"{bot.server.url}/api/messages", out=out) as channel:
        repl = Repl(channel, notify_url_for(f"{bot.server.url}/api/messages"))
        repl.run(["/user alice", "hello", "/user bob", "/users", "/quit", "never sent"])
        wait_for_text(out, "echo: hello")

    texts = [a.get("text") for a in bot.received if a["type"] == "message"]
    assert texts == ["hello"]
    assert set(channel.users) == {"alice", "bob"}
    assert channel.current is channel.users["bob"]
    assert f"{bot.server.url}/api/notify" in out.getvalue()  # the curl lines for a new user


def test_channel_curl_lines_target_the_conversation() -> None:
    lines = curl_lines("http://localhost:7071/api/notify", "localchat-alice-1")

    assert lines[0] == ("curl -X POST http://localhost:7071/api/notify -H 'Content-Type: application/json' -d "
                        "'{\"text\":\"Hello, this is a notification\",\"locale\":\"en-US\","
                        "\"to\":{\"conversation\":\"localchat-alice-1\"}}'")
    assert '"dialog":"survey"' in lines[1] and "localchat-alice-1" in lines[1]
