"""Queue messages that can never succeed go to `<queue>-poison` at once, with the reason."""

from __future__ import annotations

import json

import azure.functions.queue as func_queue
import pytest

import NotifyQueueFunction
from shared_code.app import services
from tests.support.broadcasts import driver, poisoned

BAD_MESSAGES = {
    "not json": (b"{nope", "not UTF-8 JSON"),
    "not utf-8": (b"\xff\xfe{}", "not UTF-8 JSON"),
    "unknown version": (b'{"v": 9, "to": "all", "text": "hi"}', "unknown job version 9"),
    "unknown kind": (b'{"v": 1, "kind": "email", "to": "all", "text": "hi"}', "unknown job kind 'email'"),
    "missing text": (b'{"v": 1, "kind": "message", "to": "all"}', "text is required"),
    "unknown dialog": (b'{"v": 1, "kind": "dialog", "dialog": "quiz", "to": "all"}', "unknown dialog 'quiz'"),
    "over size": (json.dumps({"v": 1, "to": "all", "text": "x" * 30000}).encode(), "text is longer than"),
    "unknown conversation": (b'{"v": 1, "to": {"conversation": "nobody"}, "text": "hi"}', "no saved address"),
    "invalid ack": (b'{"v": 1, "to": "all", "text": "hi", "ack": {"title": ""}}', "ack.title must be"),
    "page job with bad keys": (b'{"v": 1, "kind": "page", "notification": "n", "page": "0", "keys": [1]}',
                               "recipient key"),
    "scan of an unknown notification": (b'{"v": 1, "kind": "scan", "notification": "gone", "index": 0}',
                                        "no notification 'gone'"),
}


@pytest.mark.parametrize("name", BAD_MESSAGES)
def test_bad_queue_message_goes_to_poison_at_once_with_its_reason(app_env, connector, name):
    body, reason = BAD_MESSAGES[name]

    NotifyQueueFunction.main(func_queue.QueueMessage(id="m-1", body=body, dequeue_count=1))  # does not raise

    [record] = poisoned(app_env)
    assert reason in record["reason"]
    assert record["message"] == body.decode("utf-8", "replace")
    assert connector.all_activities() == {}


def test_text_that_is_not_base64_ends_in_poison_as_it_came(app_env):
    # The host base64-decodes before main() runs; what it cannot decode never reaches the function.
    queue = driver(app_env)
    queue.queue.send_message("this is {not base64")

    queue.step()

    [raw] = [m.content for m in queue.poison.peek_messages()]
    assert raw == "this is {not base64"
    assert queue.failures == []


def test_a_public_job_without_an_id_is_one_notification_however_often_it_is_delivered(app_env, connector):
    from tests.support.builders import reference

    services.get().addresses.save_many([reference(connector.url, "c-1")], trusted=False)
    body = b'{"v": 1, "to": "all", "text": "from another service"}'

    for delivery in (1, 2):
        NotifyQueueFunction.main(func_queue.QueueMessage(id="msg-7", body=body, dequeue_count=delivery))
    driver(app_env).run_until(lambda: services.get().notifications.status("q-msg-7").to_json()["state"] == "done")

    assert connector.texts("c-1") == ["from another service"]
