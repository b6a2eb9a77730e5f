"""MessagesFunction: an activity in, the reply out through the connector, the address in the table."""

from __future__ import annotations

import json

import pytest

import MessagesFunction
from shared_code.app import services
from shared_code.conversation.turn import GREETING
from tests.support.builders import conversation_update, http_request, message


def post(activity: object, **kwargs: object):
    return MessagesFunction.main(http_request("POST", "http://localhost/api/messages", activity, **kwargs))


def test_message_from_a_new_user_gets_the_greeting_as_a_reply(app_env, connector):
    activity = message(connector.url, "hello", conversation_id="conv-a")

    response = post(activity)

    assert response.status_code == 200
    [reply] = connector.activities("conv-a")
    assert reply["text"] == GREETING
    assert reply["replyToId"] == activity["id"]
    assert reply["type"] == "message"
    assert reply["conversation"]["id"] == "conv-a"
    assert reply["from"] == {"id": "bot-1", "name": "Bot"}
    assert reply["recipient"] == {"id": "user-1", "name": "User"}


def test_message_saves_the_senders_address(app_env, connector):
    post(message(connector.url, "hello", conversation_id="conv-a", user_id="u-42", locale="fr-FR"))

    address = services.get().addresses.get("conv-a")

    assert address is not None and address.active
    assert address.reference.user.id == "u-42"
    assert address.reference.bot.id == "bot-1"
    assert address.reference.service_url == connector.url
    assert address.reference.locale == "fr-FR"


def test_second_message_is_not_greeted_again(app_env, connector):
    post(message(connector.url, "one", conversation_id="conv-a"))
    post(message(connector.url, "two", conversation_id="conv-a"))

    texts = connector.texts("conv-a")

    assert texts.count(GREETING) == 1
    assert len(texts) == 2


def test_conversation_update_adding_the_bot_saves_the_address(app_env, connector):
    response = post(conversation_update(connector.url, "conv-b", added=["bot-1", "user-1"]))

    assert response.status_code == 200
    assert services.get().addresses.get("conv-b") is not None
    assert connector.texts("conv-b") == [GREETING]


def test_bot_removed_marks_the_address_inactive_with_the_reason(app_env, connector):
    post(message(connector.url, "hi", conversation_id="conv-c"))

    post(conversation_update(connector.url, "conv-c", removed=["bot-1"]))

    address = services.get().addresses.get("conv-c")
    assert address is not None and not address.active
    assert "membersRemoved" in address.inactive_reason


def test_installation_update_remove_marks_the_address_inactive(app_env, connector):
    post(message(connector.url, "hi", conversation_id="conv-d"))
    removal = conversation_update(connector.url, "conv-d") | {"type": "installationUpdate", "action": "remove"}

    post(removal)

    address = services.get().addresses.get("conv-d")
    assert address is not None and not address.active
    assert "installationUpdate" in address.inactive_reason


def test_other_activity_types_are_acknowledged_and_ignored(app_env, connector):
    typing = message(connector.url, conversation_id="conv-e") | {"type": "typing"}

    response = post(typing)

    assert response.status_code == 200
    assert response.get_body() == b""
    assert services.get().addresses.get("conv-e") is None
    assert connector.all_activities() == {}


def _without(activity: dict, key: str) -> dict:
    return {k: v for k, v in activity.items() if k != key}


BAD_BODIES = {
    "not json": b"{not json",
    "a json array": b"[1, 2]",
    "a json string": b'"message"',
    "empty body": b"",
    "missing type": _without(message("http://x", conversation_id="conv-z"), "type"),
    "missing conversation": _without(message("http://x", conversation_id="conv-z"), "conversation"),
    "missing serviceUrl": _without(message("http://x", conversation_id="conv-z"), "serviceUrl"),
    "conversation without id": message("http://x") | {"conversation": {"name": "x"}},
    "from is a string": message("http://x") | {"from": "user"},
    "membersAdded not a list": message("http://x") | {"type": "conversationUpdate", "membersAdded": {"id": "a"}},
}


@pytest.mark.parametrize("name", BAD_BODIES)
def test_bad_activity_is_a_400_with_a_json_error_and_stores_nothing(app_env, connector, name):
    body = BAD_BODIES[name]
    raw = body if isinstance(body, bytes) else json.dumps(body | ({"serviceUrl": connector.url} if "serviceUrl" in body else {})).encode()

    response = post(None, raw=raw)

    assert response.status_code == 400
    error = json.loads(response.get_body())["error"]
    assert error["code"] == "bad_request" and error["message"]
    assert connector.all_activities() == {}
    assert list(services.get().addresses.iter_active()) == []


def test_body_over_the_size_limit_is_a_413(app_env, connector):
    app_env.set(MaxRequestBytes="1024")
    activity = message(connector.url, "x" * 2000, conversation_id="conv-big")

    response = post(activity)

    assert response.status_code == 413
    assert json.loads(response.get_body())["error"]["code"] == "payload_too_large"
    assert services.get().addresses.get("conv-big") is None
    assert connector.all_activities() == {}
