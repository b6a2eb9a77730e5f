"""/api/messages under hostile input: lone surrogates, controls, huge strings, deep nesting, extreme dates and
wrong types are answered 200 or a JSON 4xx, never a 500 or a traceback, and a refused activity stores nothing."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import MessagesFunction
from shared_code.app import services
from tests.support import hostile, stored
from tests.support.builders import conversation_update, http_request, message

ACTIVITY_PATHS = [
    ("type",), ("id",), ("channelId",), ("serviceUrl",), ("timestamp",), ("localTimestamp",), ("text",), ("locale",),
    ("action",), ("value",), ("entities",), ("attachments",), ("membersAdded",), ("membersRemoved",),
    ("conversation",), ("conversation", "id"), ("conversation", "name"), ("conversation", "tenantId"),
    ("conversation", "conversationType"), ("conversation", "isGroup"),
    ("from",), ("from", "id"), ("from", "name"), ("from", "aadObjectId"), ("from", "role"),
    ("recipient", "id"), ("recipient", "name"), ("channelData",), ("channelData", "tenant", "id"),
]
HOSTILE = settings(max_examples=40, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                          HealthCheck.data_too_large, HealthCheck.large_base_example])


def post(raw: bytes):
    return MessagesFunction.main(http_request("POST", "http://localhost/api/messages", raw=raw))


def hostile_activity(connector, kind: str, edits) -> bytes:
    conversation_id = f"conv-{uuid.uuid4().hex}"
    base = (message(connector.url, "hi", conversation_id=conversation_id) if kind == "message"
            else conversation_update(connector.url, conversation_id, added=["bot-1", "user-1"]))
    return hostile.dumps(hostile.mutated(base, edits))


@HOSTILE
@given(kind=st.sampled_from(["message", "conversationUpdate"]), edits=hostile.changes(ACTIVITY_PATHS))
def test_a_hostile_activity_is_answered_without_a_500_or_a_traceback(app_env, connector, caplog, kind, edits):
    raw = hostile_activity(connector, kind, edits)
    caplog.clear()

    with caplog.at_level(logging.DEBUG):
        response = post(raw)

    assert response.status_code in (200, 400, 413), response.get_body()[:300]
    assert hostile.tracebacks(caplog.records) == []


@pytest.mark.slow
@HOSTILE
@given(kind=st.sampled_from(["message", "conversationUpdate"]), edits=hostile.changes(ACTIVITY_PATHS))
def test_a_refused_hostile_activity_stores_nothing_and_says_why(app_env, connector, kind, edits):
    raw = hostile_activity(connector, kind, edits)
    before = stored.snapshot(app_env)

    response = post(raw)

    if response.status_code >= 400:
        assert json.loads(response.get_body())["error"]["message"]
        assert stored.snapshot(app_env) == before


def test_a_conversation_id_with_a_lone_surrogate_is_a_400_and_nothing_is_stored(app_env, connector):
    raw = json.dumps(message(connector.url, "hi", conversation_id="a\ud800b")).encode()
    assert b"a\\ud800b" in raw  # sent as the escape an attacker would write

    response = post(raw)

    assert response.status_code == 400
    assert "lone surrogate" in json.loads(response.get_body())["error"]["message"]
    assert stored.snapshot(app_env) == stored.snapshot_of_nothing(app_env)
    assert connector.all_activities() == {}


def test_an_activity_nested_ten_thousand_deep_is_a_400(app_env, connector):
    raw = hostile.dumps(message(connector.url, "hi") | {"channelData": hostile.Deep(10_000)})

    response = post(raw)

    assert response.status_code == 400
    assert "nested deeper than 64" in json.loads(response.get_body())["error"]["message"]


def test_an_over_long_conversation_id_is_a_400_naming_the_field(app_env, connector):
    response = post(json.dumps(message(connector.url, "hi", conversation_id="c" * 1025)).encode())

    assert response.status_code == 400
    assert "activity.conversation.id is longer than 1024" in json.loads(response.get_body())["error"]["message"]


def test_a_service_url_that_is_not_an_http_url_is_a_400(app_env, connector):
    response = post(json.dumps(message("javascript:alert(1)", "hi")).encode())

    assert response.status_code == 400
    assert "serviceUrl" in json.loads(response.get_body())["error"]["message"]


def test_an_over_long_display_name_is_clipped_not_refused(app_env, connector):
    activity = message(connector.url, "hi", conversation_id="conv-name")
    activity["from"]["name"] = "N" * 5000

    response = post(json.dumps(activity).encode())

    assert response.status_code == 200
    saved = services.get().addresses.get("conv-name")
    assert saved is not None and saved.reference.user.name == "N" * 255 + "…"


def test_a_6000_character_activity_id_is_accepted(app_env, connector):
    activity = message(connector.url, "hi", conversation_id="conv-long-id") | {"id": "a" * 6000}

    response = post(json.dumps(activity).encode())

    assert response.status_code == 200
    assert connector.texts("conv-long-id")
