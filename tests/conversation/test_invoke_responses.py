"""Every invoke gets an invoke response with a body: Teams shows an empty answer as an error."""

from __future__ import annotations

import json

import pytest

import MessagesFunction
from tests.support.builders import http_request, message


def post(activity: dict):
    return MessagesFunction.main(http_request("POST", "http://localhost/api/messages", activity))


def an_invoke(service_url: str, name: str | None, value: object = None) -> dict:
    activity = message(service_url, "", conversation_id="conv-invoke") | {"type": "invoke"}
    del activity["text"]
    if name is not None:
        activity["name"] = name
    if value is not None:
        activity["value"] = value
    return activity


@pytest.mark.parametrize("name", ["task/fetch", "composeExtension/query", "signin/verifyState", "healthCheck", None])
def test_an_invoke_the_bot_does_not_handle_gets_a_501_with_a_json_body(app_env, connector, name):
    response = post(an_invoke(connector.url, name, {"x": 1}))

    assert response.status_code == 501
    answer = json.loads(response.get_body())
    assert answer["statusCode"] == 501
    assert answer["type"] == "application/vnd.microsoft.error"
    assert answer["value"]["code"] == "NotImplemented"
    assert (name or "(no name)") in answer["value"]["message"]
    assert connector.all_activities() == {}


def test_a_card_action_with_another_verb_gets_a_501_with_a_json_body(app_env, connector):
    value = {"action": {"type": "Action.Execute", "verb": "vote", "data": {"choice": "a"}}, "trigger": "manual"}

    response = post(an_invoke(connector.url, "adaptiveCard/action", value))

    assert response.status_code == 501
    assert json.loads(response.get_body())["value"]["code"] == "NotImplemented"


def test_an_ack_click_without_a_notification_gets_a_501_with_a_json_body(app_env, connector):
    value = {"action": {"type": "Action.Execute", "verb": "ack", "data": {"notification": 5}}, "trigger": "manual"}

    response = post(an_invoke(connector.url, "adaptiveCard/action", value))

    assert response.status_code == 501
    assert json.loads(response.get_body())["statusCode"] == 501


def test_a_message_still_gets_an_empty_200(app_env, connector):
    response = post(message(connector.url, "hello", conversation_id="conv-m"))

    assert response.status_code == 200
    assert response.get_body() == b""
