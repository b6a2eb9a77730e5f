"""Acknowledgements: a notification with `ack` carries a button; a click from a recipient counts once,
anything else is recorded nowhere."""

from __future__ import annotations

import json
import uuid

import MessagesFunction
from shared_code.app import services
from shared_code.notifications.records.ledger import RecipientKey
from tests.support.builders import http_request, message
from tests.support.notify_calls import body, call, drain, seed, status
from tests.support.stored import table_rows

CARD_TYPE = "application/vnd.microsoft.card.adaptive"


def post(activity: dict):
    return MessagesFunction.main(http_request("POST", "http://localhost/api/messages", activity))


def invoke_click(connector, conversation_id: str, data: dict) -> dict:
    activity = message(connector.url, "", conversation_id=conversation_id)
    activity.update(type="invoke", name="adaptiveCard/action",
                    value={"action": {"type": "Action.Execute", "verb": "ack", "data": data}, "trigger": "manual"})
    del activity["text"]
    return activity


def submit_click(connector, conversation_id: str, data: dict) -> dict:
    activity = message(connector.url, "", conversation_id=conversation_id)
    activity.update(value=data, replyToId=uuid.uuid4().hex)
    del activity["text"]
    return activity


def broadcast(app_env, connector, notification_id: str, conversations: list[str]) -> None:
    seed(connector, {cid: "en-US" for cid in conversations})
    response = call("POST", {"id": notification_id, "to": "all", "text": "Read the new policy",
                             "ack": {"title": "Got it"}})
    assert response.status_code == 202
    drain(app_env, lambda: status(notification_id)["state"] == "done")


def test_each_message_of_an_ack_notification_carries_an_execute_button_naming_it(app_env, connector):
    broadcast(app_env, connector, "policy-1", ["c-1", "c-2"])

    [sent] = connector.activities("c-1")

    [attachment] = sent["attachments"]
    assert attachment["contentType"] == CARD_TYPE
    assert attachment["content"]["body"][0]["text"] == "Read the new policy"
    [action] = attachment["content"]["actions"]
    assert (action["type"], action["title"], action["verb"]) == ("Action.Execute", "Got it", "ack")
    assert action["data"]["notification"] == "policy-1"
    assert action["fallback"]["type"] == "Action.Submit" and action["fallback"]["data"] == action["data"]
    assert "text" not in sent  # one message, not text plus a card that Teams may split


def test_an_invoke_click_is_answered_with_the_acknowledged_card_and_counted_once_when_clicked_twice(app_env, connector):
    broadcast(app_env, connector, "policy-2", ["c-1", "c-2", "c-3"])
    click = invoke_click(connector, "c-1", {"verb": "ack", "notification": "policy-2"})

    first, second = post(click), post(dict(click, id=uuid.uuid4().hex))

    assert (first.status_code, second.status_code) == (200, 200)
    answer = json.loads(first.get_body())
    assert (answer["statusCode"], answer["type"]) == (200, CARD_TYPE)
    assert answer["value"]["type"] == "AdaptiveCard"
    assert answer["value"]["body"][-1]["text"] == "✅ Acknowledged"
    assert "actions" not in answer["value"]
    assert json.loads(second.get_body()) == answer
    assert status("policy-2")["acknowledged"] == 1


def test_a_submit_click_is_counted_once_when_clicked_twice_and_not_run_through_the_dialogs(app_env, connector):
    broadcast(app_env, connector, "policy-3", ["c-1", "c-2"])
    click = submit_click(connector, "c-2", {"verb": "ack", "notification": "policy-3"})

    first, second = post(click), post(dict(click, id=uuid.uuid4().hex))

    assert (first.status_code, second.status_code) == (200, 200)
    assert status("policy-3")["acknowledged"] == 1
    # The broadcast, then one confirmation: no dialog question, no second confirmation.
    assert connector.texts("c-2")[1:] == ["Thanks, your acknowledgement is recorded."]


def test_an_invoke_and_a_submit_from_two_recipients_count_two(app_env, connector):
    broadcast(app_env, connector, "policy-4", ["c-1", "c-2", "c-3"])

    post(invoke_click(connector, "c-1", {"verb": "ack", "notification": "policy-4"}))
    post(submit_click(connector, "c-3", {"verb": "ack", "notification": "policy-4"}))

    assert status("policy-4")["acknowledged"] == 2
    acks = services.get().acknowledgements
    assert acks.acknowledged_at("policy-4", RecipientKey("test", "c-1")) is not None
    assert acks.acknowledged_at("policy-4", RecipientKey("test", "c-2")) is None


def test_a_forged_click_naming_another_conversation_is_not_counted(app_env, connector):
    broadcast(app_env, connector, "policy-5", ["c-1", "c-2"])
    seed(connector, {"outsider": "en-US"})  # known to the bot, but not a recipient of policy-5
    forged = {"verb": "ack", "notification": "policy-5", "conversation": "c-1", "channel": "test"}

    response = post(invoke_click(connector, "outsider", forged))
    post(submit_click(connector, "outsider", forged))

    assert response.status_code == 200
    assert json.loads(response.get_body())["statusCode"] == 403
    assert status("policy-5")["acknowledged"] == 0
    assert table_rows(app_env, "AcknowledgementsTableName") == []
    assert connector.texts("outsider") == []


def test_an_ack_for_an_unknown_notification_is_recorded_nowhere(app_env, connector, caplog):
    broadcast(app_env, connector, "policy-6", ["c-1"])

    response = post(invoke_click(connector, "c-1", {"verb": "ack", "notification": "no-such-notification"}))

    assert response.status_code == 200
    assert json.loads(response.get_body())["statusCode"] == 403
    assert table_rows(app_env, "AcknowledgementsTableName") == []
    assert "no notification 'no-such-notification'" in caplog.text


def test_a_notification_without_ack_sends_its_text_as_before(app_env, connector):
    seed(connector, {"c-1": "en-US"})

    call("POST", {"id": "plain", "to": "all", "text": "no button"})
    drain(app_env, lambda: status("plain")["state"] == "done")

    [sent] = connector.activities("c-1")
    assert sent["text"] == "no button" and "attachments" not in sent
    assert status("plain")["acknowledged"] == 0


def test_an_invalid_ack_is_a_400_and_creates_nothing(app_env, connector):
    seed(connector, {"c-1": "en-US"})

    response = call("POST", {"id": "bad-ack", "to": "all", "text": "hi", "ack": {"title": 42}})

    assert response.status_code == 400
    assert body(response)["error"]["code"] == "bad_request"
    assert services.get().notifications.get("bad-ack") is None


def test_a_reaction_to_a_sent_message_is_kept_by_conversation_and_message(app_env, connector):
    broadcast(app_env, connector, "policy-7", ["c-1"])
    [sent] = connector.activities("c-1")
    reaction = message(connector.url, "", conversation_id="c-1")
    reaction.update(type="messageReaction", replyToId=sent["id"], reactionsAdded=[{"type": "like"}])
    del reaction["text"]

    response = post(reaction)

    assert response.status_code == 200 and response.get_body() == b""
    acks = services.get().acknowledgements
    assert acks.reaction(RecipientKey("test", "c-1"), sent["id"]) == "like"
    assert acks.reaction(RecipientKey("test", "c-1"), "another-message") == ""


def test_a_click_in_a_teams_channel_thread_counts_for_the_channel_the_post_went_to(app_env, connector):
    broadcast(app_env, connector, "policy-8", ["19:general@thread.tacv2", "19:random@thread.tacv2"])

    post(invoke_click(connector, "19:general@thread.tacv2;messageid=1700000000000",
                      {"verb": "ack", "notification": "policy-8"}))
    refused = post(invoke_click(connector, "19:elsewhere@thread.tacv2;messageid=1700000000000",
                                {"verb": "ack", "notification": "policy-8"}))

    assert json.loads(refused.get_body())["statusCode"] == 403
    assert status("policy-8")["acknowledged"] == 1
    acks = services.get().acknowledgements
    assert acks.acknowledged_at("policy-8", RecipientKey("test", "19:general@thread.tacv2")) is not None


def test_a_queue_job_with_ack_sends_the_button_too(app_env, connector):
    from shared_code.notifications import jobs

    seed(connector, {"c-1": "en-US"})
    jobs.enqueue({"v": 1, "id": "from-queue", "to": "all", "text": "queued", "ack": {"title": "Seen"}}, services.get())

    drain(app_env, lambda: bool(connector.activities("c-1")) and status("from-queue")["state"] == "done")

    [sent] = connector.activities("c-1")
    assert sent["attachments"][0]["content"]["actions"][0]["title"] == "Seen"
