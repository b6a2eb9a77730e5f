"""NotifyFunction for many recipients: 202 and a status URL, idempotent ids, status, cancel, bad input."""

from __future__ import annotations

import json

import pytest

import NotifyFunction
from shared_code.app import services
from tests.support.builders import http_request, reference
from tests.support.queue_driver import QueueDriver


def call(method: str, body: object = None, *, notification_id: str = "", **kwargs: object):
    url = "http://bot.example:7071/api/notify" + (f"/{notification_id}" if notification_id else "")
    route = {"id": notification_id} if notification_id else {}
    return NotifyFunction.main(http_request(method, url, body, route_params=route, **kwargs))


def seed(connector, count: int) -> list[str]:
    ids = [f"c-{i:03d}" for i in range(count)]
    refs = [reference(connector.url, cid, user_id="u-1" if i < 2 else f"u-{cid}") for i, cid in enumerate(ids)]
    services.get().addresses.save_many(refs, trusted=False)
    return ids


def drain_until_done(app_env, notification_id: str) -> dict:
    driver = QueueDriver(app_env.values["AzureWebJobsStorage"], app_env.values["JobsQueueName"])
    driver.run_until(lambda: json.loads(call("GET", notification_id=notification_id).get_body())["state"] == "done",
                     timeout=30)
    return json.loads(call("GET", notification_id=notification_id).get_body())


def test_broadcast_answers_202_with_a_status_url_and_the_status_counts_every_recipient(app_env, connector):
    ids = seed(connector, 12)

    response = call("POST", {"text": "news", "locale": "en-GB", "to": "all", "id": "release-42"})

    assert response.status_code == 202
    assert json.loads(response.get_body()) == {
        "id": "release-42", "status": "http://bot.example:7071/api/notify/release-42", "created": True}
    status = drain_until_done(app_env, "release-42")
    assert {k: status[k] for k in ("state", "total", "sent", "failed", "pending", "skipped")} == {
        "state": "done", "total": 12, "sent": 12, "failed": 0, "pending": 0, "skipped": {"inactive": 0, "gone": 0}}
    assert all(connector.texts(cid) == ["news"] for cid in ids)
    assert connector.activities(ids[0])[0]["locale"] == "en-GB"


def test_the_same_caller_id_twice_is_one_notification(app_env, connector):
    ids = seed(connector, 5)
    body = {"text": "only once", "to": "all", "id": "same-key"}

    first, second = call("POST", body), call("POST", body)

    assert (first.status_code, second.status_code) == (202, 202)
    assert (json.loads(first.get_body())["created"], json.loads(second.get_body())["created"]) == (True, False)
    drain_until_done(app_env, "same-key")
    assert all(connector.texts(cid) == ["only once"] for cid in ids)


def test_the_same_caller_id_with_different_content_is_a_409(app_env, connector):
    seed(connector, 2)
    call("POST", {"text": "first", "to": "all", "id": "reused"})

    response = call("POST", {"text": "second", "to": "all", "id": "reused"})

    assert response.status_code == 409
    assert json.loads(response.get_body())["error"]["code"] == "conflict"


def test_a_user_target_reaches_each_of_the_users_conversations(app_env, connector):
    ids = seed(connector, 4)

    response = call("POST", {"text": "for u-1", "to": {"user": "u-1"}, "id": "to-user"})

    assert response.status_code == 202
    status = drain_until_done(app_env, "to-user")
    assert (status["total"], status["sent"]) == (2, 2)
    assert [len(connector.texts(cid)) for cid in ids] == [1, 1, 0, 0]


def test_get_of_an_unknown_notification_is_a_404(app_env):
    response = call("GET", notification_id="nope")

    assert response.status_code == 404
    assert json.loads(response.get_body())["error"]["code"] == "not_found"


def test_delete_cancels_what_was_not_sent_yet(app_env, connector):
    ids = seed(connector, 6)
    call("POST", {"text": "never mind", "to": "all", "id": "oops"})

    response = call("DELETE", notification_id="oops")
    QueueDriver(app_env.values["AzureWebJobsStorage"], app_env.values["JobsQueueName"]).step()

    assert response.status_code == 200
    assert json.loads(response.get_body())["state"] == "cancelled"
    assert all(connector.texts(cid) == [] for cid in ids)


BAD_BROADCASTS = {
    "unknown target": ({"text": "hi", "to": "everyone"}, 400),
    "unknown dialog": ({"dialog": "quiz", "to": "all"}, 400),
    "missing text": ({"to": "all"}, 400),
    "unknown version": ({"v": 2, "text": "hi", "to": "all"}, 400),
    "unknown kind": ({"kind": "scan", "text": "hi", "to": "all"}, 400),
    "id not a string": ({"text": "hi", "to": "all", "id": 5}, 400),
    "text over the channel's limit": ({"text": "x" * (29 * 1024), "to": "all"}, 400),
    "unknown user": ({"text": "hi", "to": {"user": "nobody"}}, 404),
}


@pytest.mark.parametrize("name", BAD_BROADCASTS)
def test_bad_broadcast_request_gets_a_json_error_and_starts_nothing(app_env, connector, name):
    seed(connector, 2)
    body, expected = BAD_BROADCASTS[name]

    response = call("POST", body)

    assert response.status_code == expected
    assert json.loads(response.get_body())["error"]["message"]
    assert queued() == []


def queued() -> list:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return list(services.get().queue().peek_messages(max_messages=32))
    except ResourceNotFoundError:
        return []


def test_broadcast_body_over_the_limit_is_a_413(app_env, connector):
    app_env.set(MaxRequestBytes="256")

    response = call("POST", {"text": "x" * 300, "to": "all"})

    assert response.status_code == 413
    assert json.loads(response.get_body())["error"]["code"] == "payload_too_large"
