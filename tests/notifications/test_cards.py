"""Adaptive Cards and suggested actions: intact at the connector, refused with the reason when bad."""

from __future__ import annotations

import json

from shared_code.app import services
from shared_code.notifications import jobs
from tests.support.notify_calls import ACTIONS, CARD, body, call, drain, driver, queued, seed, status

BIG_CARD = {"contentType": CARD["contentType"],
            "content": {"type": "AdaptiveCard", "version": "1.5",
                        "body": [{"type": "TextBlock", "text": "x" * (29 * 1024)}]}}
NOT_JSON_CARD = {"contentType": CARD["contentType"], "content": '{"type": "AdaptiveCard", "body": ['}


def test_a_card_reaches_one_conversation_intact(app_env, connector):
    seed(connector, {"c-1": "en-US"})

    response = call("POST", {"to": {"conversation": "c-1"}, "attachments": [CARD], "suggestedActions": ACTIONS})

    assert response.status_code == 200
    [activity] = connector.activities("c-1")
    assert (activity["attachments"], activity["suggestedActions"], "text" in activity) == ([CARD], ACTIONS, False)


def test_a_card_reaches_every_recipient_of_a_broadcast_intact(app_env, connector):
    seed(connector, {"c-1": "en-US", "c-2": "en-GB", "c-3": "fr-FR"})

    response = call("POST", {"to": "all", "id": "card-all", "text": "Release 42", "attachments": [CARD]})
    drain(app_env, lambda: status("card-all")["state"] == "done")

    assert response.status_code == 202
    for conversation_id in ("c-1", "c-2", "c-3"):
        [activity] = connector.activities(conversation_id)
        assert (activity["text"], activity["attachments"]) == ("Release 42", [CARD])


def test_an_oversized_card_is_a_400_and_nothing_is_sent(app_env, connector):
    seed(connector, {"c-1": "en-US"})

    response = call("POST", {"to": "all", "attachments": [BIG_CARD]})

    assert response.status_code == 400
    assert "larger than" in body(response)["error"]["message"]
    assert (queued(), connector.total_delivered()) == ([], 0)


def test_a_card_that_is_not_json_is_a_400(app_env, connector):
    seed(connector, {"c-1": "en-US"})

    response = call("POST", {"to": {"conversation": "c-1"}, "attachments": [NOT_JSON_CARD]})

    assert response.status_code == 400
    assert "not an Adaptive Card" in body(response)["error"]["message"]
    assert connector.total_delivered() == 0


def test_an_oversized_card_on_the_queue_goes_to_poison_with_the_reason(app_env, connector):
    seed(connector, {"c-1": "en-US"})
    jobs.enqueue({"v": 1, "to": "all", "attachments": [BIG_CARD]}, services.get())

    host = driver(app_env)
    host.step()

    [poisoned] = host.poisoned()
    assert "larger than" in json.loads(poisoned)["reason"]
    assert connector.total_delivered() == 0


def test_a_card_that_is_not_json_on_the_queue_goes_to_poison_with_the_reason(app_env, connector):
    seed(connector, {"c-1": "en-US"})
    jobs.enqueue({"v": 1, "to": {"conversation": "c-1"}, "attachments": [NOT_JSON_CARD]}, services.get())

    host = driver(app_env)
    host.step()

    [poisoned] = host.poisoned()
    assert "not an Adaptive Card" in json.loads(poisoned)["reason"]
    assert connector.total_delivered() == 0
