"""The connector stub's PUT and DELETE of activities it created, as the real connector answers them."""

from __future__ import annotations

import requests

from stubs.connector import ConnectorStub, Fault


def send(stub: ConnectorStub, conversation_id: str, text: str) -> str:
    answer = requests.post(f"{stub.url}/v3/conversations/{conversation_id}/activities",
                           json={"type": "message", "text": text}, timeout=5)
    return answer.json()["id"]


def activity_url(stub: ConnectorStub, conversation_id: str, activity_id: str) -> str:
    return f"{stub.url}/v3/conversations/{conversation_id}/activities/{activity_id}"


def test_put_updates_an_activity_in_place_and_is_recorded(connector):
    activity_id = send(connector, "c-1", "old")

    answer = requests.put(activity_url(connector, "c-1", activity_id), json={"type": "message", "text": "new"}, timeout=5)

    assert (answer.status_code, answer.json()) == (200, {"id": activity_id})
    assert connector.texts("c-1") == ["new"]
    assert connector.activities("c-1")[0]["id"] == activity_id
    assert connector.updated == [("c-1", activity_id, {"type": "message", "text": "new"})]


def test_delete_removes_an_activity_and_is_recorded(connector):
    first, second = send(connector, "c-1", "one"), send(connector, "c-1", "two")

    answer = requests.delete(activity_url(connector, "c-1", first), timeout=5)

    assert answer.status_code == 200
    assert connector.texts("c-1") == ["two"]
    assert connector.deleted == [("c-1", first)]
    assert [a["id"] for a in connector.activities("c-1")] == [second]


def test_put_or_delete_of_an_unknown_activity_is_a_404_activity_not_found(connector):
    activity_id = send(connector, "c-1", "mine")

    answers = [requests.put(activity_url(connector, "c-1", "not-sent"), json={"type": "message", "text": "x"}, timeout=5),
               requests.delete(activity_url(connector, "c-2", activity_id), timeout=5)]

    assert [a.status_code for a in answers] == [404, 404]
    assert {a.json()["error"]["code"] for a in answers} == {"ActivityNotFoundInConversation"}
    assert connector.updated == [] and connector.deleted == []


def test_an_activity_deleted_once_cannot_be_deleted_or_updated_again(connector):
    activity_id = send(connector, "c-1", "gone soon")
    requests.delete(activity_url(connector, "c-1", activity_id), timeout=5)

    again = requests.delete(activity_url(connector, "c-1", activity_id), timeout=5)
    update = requests.put(activity_url(connector, "c-1", activity_id), json={"type": "message", "text": "x"}, timeout=5)

    assert (again.status_code, update.status_code) == (404, 404)
    assert connector.deleted == [("c-1", activity_id)]


def test_a_queued_fault_answers_an_edit_and_changes_nothing(connector):
    activity_id = send(connector, "c-1", "old")
    connector.fail_next("c-1", Fault(429, "Throttled", retry_after=2))

    answer = requests.put(activity_url(connector, "c-1", activity_id), json={"type": "message", "text": "new"}, timeout=5)

    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "2")
    assert connector.texts("c-1") == ["old"] and connector.updated == []


def test_a_put_without_an_activity_type_is_a_400(connector):
    activity_id = send(connector, "c-1", "old")

    answer = requests.put(activity_url(connector, "c-1", activity_id), json={"text": "new"}, timeout=5)

    assert answer.status_code == 400
    assert connector.texts("c-1") == ["old"]
