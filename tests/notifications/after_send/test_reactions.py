"""Reactions (messageReaction) to a message a notification sent: attributed to that notification."""

from __future__ import annotations

import MessagesFunction
from tests.support.builders import http_request, reaction
from tests.support.notify_calls import call, drain, seed, status


def post(activity: dict):
    return MessagesFunction.main(http_request("POST", "http://localhost/api/messages", activity))


def broadcast(app_env, connector, notification_id: str, conversations: list[str]) -> None:
    seed(connector, {cid: "en-US" for cid in conversations})
    assert call("POST", {"id": notification_id, "to": "all", "text": "Lunch is served"}).status_code == 202
    drain(app_env, lambda: status(notification_id)["state"] == "done")


def test_a_reaction_to_a_broadcast_message_is_counted_for_its_notification(app_env, connector):
    broadcast(app_env, connector, "lunch", ["c-1", "c-2"])
    broadcast(app_env, connector, "dinner", ["c-1", "c-2"])
    lunch_message = connector.activities("c-1")[0]["id"]

    post(reaction(connector, "c-1", lunch_message))
    post(reaction(connector, "c-1", lunch_message, "heart", user_id="user-2"))

    assert (status("lunch")["reactions"], status("dinner")["reactions"]) == (2, 0)


def test_a_reaction_to_a_message_no_notification_sent_is_counted_nowhere(app_env, connector):
    broadcast(app_env, connector, "breakfast", ["c-1"])
    other_conversations_message = "not-ours"

    post(reaction(connector, "c-1", other_conversations_message))

    assert status("breakfast")["reactions"] == 0


def test_a_reaction_in_another_conversation_to_the_same_activity_id_is_not_attributed(app_env, connector):
    broadcast(app_env, connector, "tea", ["c-1"])
    sent = connector.activities("c-1")[0]["id"]

    post(reaction(connector, "c-2", sent))

    assert status("tea")["reactions"] == 0


def test_the_same_user_reacting_twice_to_a_message_counts_once(app_env, connector):
    broadcast(app_env, connector, "coffee", ["c-1"])
    sent = connector.activities("c-1")[0]["id"]

    post(reaction(connector, "c-1", sent, "like"))
    post(reaction(connector, "c-1", sent, "laugh"))

    assert status("coffee")["reactions"] == 1
