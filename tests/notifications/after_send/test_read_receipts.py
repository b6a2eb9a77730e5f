"""Read receipts (Teams' readReceipt event in a personal chat): every notification message delivered to that
chat up to the receipt's lastReadMessageId is read, each recipient counted once, no other chat touched."""

from __future__ import annotations

import MessagesFunction
from shared_code.app import services
from shared_code.notifications.jobs import parse_job
from shared_code.notifications.records.ledger import DeliveryState, Finish, RecipientKey
from tests.support.builders import http_request, read_receipt
from tests.support.notify_calls import body, call, seed, status
from tests.support.stored import table_rows


def teams_chats(connector, *conversation_ids: str) -> None:
    """Saved personal chats whose message ids are numbers, as in Teams."""
    connector.numeric_ids = True
    seed(connector, dict.fromkeys(conversation_ids, "en-US"))


def post(activity: dict):
    return MessagesFunction.main(http_request("POST", "http://localhost/api/messages", activity))


def send(notification_id: str, conversation_id: str) -> str:
    """A notification sent at once to one conversation (kept with its ledger row); its message's id."""
    response = call("POST", {"id": notification_id, "text": "Office closed Friday", "to": {"conversation": conversation_id}})
    assert response.status_code == 200
    return body(response)["id"]


def receipt(connector, conversation_id: str, last_read_id) -> object:
    return post(read_receipt(connector, conversation_id, {"lastReadMessageId": last_read_id}))


def reads(*notification_ids: str) -> list[int]:
    return [status(n)["read"] for n in notification_ids]


def test_a_receipt_marks_every_earlier_delivery_in_its_chat_read(app_env, connector):
    teams_chats(connector, "c-1")
    send("first", "c-1")
    second = send("second", "c-1")

    response = receipt(connector, "c-1", second)

    assert (response.status_code, response.get_body()) == (200, b"")
    assert reads("first", "second") == [1, 1]


def test_a_message_sent_after_the_receipts_id_stays_unread(app_env, connector):
    teams_chats(connector, "c-1")
    first = send("first", "c-1")
    send("later", "c-1")

    receipt(connector, "c-1", first)

    assert reads("first", "later") == [1, 0]


def test_repeated_and_later_receipts_count_a_recipient_once(app_env, connector):
    teams_chats(connector, "c-1")
    sent = send("once", "c-1")

    receipt(connector, "c-1", sent)
    receipt(connector, "c-1", sent)
    receipt(connector, "c-1", str(int(sent) + 1000))

    assert reads("once") == [1]


def test_a_receipt_in_another_chat_leaves_this_chats_messages_unread(app_env, connector):
    teams_chats(connector, "c-1", "c-2")
    send("mine", "c-1")
    theirs = send("theirs", "c-2")

    receipt(connector, "c-2", str(int(theirs) + 10**6))

    assert reads("mine", "theirs") == [0, 1]


def test_a_non_numeric_message_id_is_read_only_by_a_receipt_naming_it_exactly(app_env, connector):
    seed(connector, {"c-1": "en-US"})
    first = send("opaque-1", "c-1")
    send("opaque-2", "c-1")

    receipt(connector, "c-1", "~" + first)  # sorts after every hex id: no order is assumed
    assert reads("opaque-1", "opaque-2") == [0, 0]
    receipt(connector, "c-1", first)
    assert reads("opaque-1", "opaque-2") == [1, 0]


def test_a_receipt_from_a_group_chat_reads_nothing(app_env, connector):
    teams_chats(connector, "g-1")
    sent = send("group", "g-1")
    activity = read_receipt(connector, "g-1", {"lastReadMessageId": sent})
    activity["conversation"]["conversationType"] = "groupChat"

    response = post(activity)

    assert (response.status_code, response.get_body(), reads("group")) == (200, b"", [0])


def test_a_persons_message_is_read_only_from_the_chat_it_went_to(app_env, connector):
    # A team's member is keyed by who they are; their message went to their personal chat (SentTo).
    app = services.get()
    app.notifications.create(parse_job({"id": "member", "to": "all", "text": "hi"}, require_version=False))
    key = RecipientKey("test", "user-1")
    claim = app.ledger.claim("member", "0", key)
    app.ledger.settle("member", "0", [Finish(claim.delivery, DeliveryState.SENT, activity_id="1000",
                                             sent_to="c-personal")])

    receipt(connector, "c-elsewhere", "2000")  # the same user, writing from another chat
    assert app.reads.count("member") == 0
    receipt(connector, "c-personal", "2000")
    assert app.reads.count("member") == 1


def test_a_malformed_receipt_is_answered_200_and_stores_nothing(app_env, connector):
    teams_chats(connector, "c-1")
    send("kept", "c-1")
    malformed = [None, "1", [], {}, {"lastReadMessageId": 10**20}, {"lastReadMessageId": ""},
                 {"lastReadMessageId": "9" * 300}]  # (ill-formed text is refused, 400, at the edge for any activity)

    answers = [post(read_receipt(connector, "c-1", value)) for value in malformed]

    assert {(a.status_code, a.get_body()) for a in answers} == {(200, b"")}
    assert reads("kept") == [0]
    assert table_rows(app_env, "AcknowledgementsTableName") == []
