"""State that cannot outgrow its row: whatever users type and however long the channel's ids, every turn
answers, the stack stays within Table Storage's 32K-character property, and state that is already too large
(or would become so) restarts at the main dialog with a warning instead of leaving the conversation stuck."""

from __future__ import annotations

import json
import logging

import pytest
from azure.data.tables import TableServiceClient

import MessagesFunction
import NotifyFunction
from shared_code.app import services
from shared_code.conversation.dialogs import RESTARTED
from shared_code.conversation.main_dialog import ASK_NAME
from shared_code.conversation.state import MAX_REMEMBERED_ID_CHARS, MAX_STACK_CHARS, state_keys
from shared_code.conversation.survey import BACK, THANKS
from shared_code.plumbing import limits
from shared_code.protocol.connector import ConnectorClient
from shared_code.protocol.conversation_limits import ConversationLimiter
from tests.support.builders import http_request, message, reference
from tests.support.clocks import FakeClock

LONG_ID = "a" * 6000


def conversation_limits_on_a_fake_clock() -> None:
    """Teams' per-conversation limits still counted, on a clock that moves when the limiter waits: a hundred
    turns in one conversation would wait about 40 s of real time for them. The limits themselves are
    tests/conversation/test_conversation_limits.py's subject."""
    app = services.get()
    clock = FakeClock()
    # Put in the slot Services caches its connector in: the same client, with its limiter on the fake clock.
    app.__dict__["connector"] = ConnectorClient(app.credentials, app.http_session,
                                                conversations=ConversationLimiter(clock=clock, sleep=clock.sleep))


def turn(connector, conversation_id: str, text: str, activity_id: str = ""):
    activity = message(connector.url, text, conversation_id=conversation_id)
    if activity_id:
        activity["id"] = activity_id
    return MessagesFunction.main(http_request("POST", "http://localhost/api/messages", activity))


def largest_text(connector, conversation_id: str, activity_id: str, char: str) -> str:
    """A text that makes the activity's body as large as the app accepts (MaxRequestBytes)."""
    limit = services.get().settings.max_request_bytes
    activity = message(connector.url, "", conversation_id=conversation_id) | {"id": activity_id}
    room = limit - len(json.dumps(activity).encode()) - 16
    return char * (room // len(json.dumps(char)[1:-1].encode()))


def stored_stack(conversation_id: str) -> str:
    return table().get_entity(*state_keys("test", conversation_id))["Stack"]


def table():
    settings = services.get().settings
    client = TableServiceClient.from_connection_string(settings.storage_connection).get_table_client(
        settings.dialog_state_table)
    try:
        client.create_table()
    except Exception:  # noqa: BLE001 - it exists already
        pass
    return client


def write_stack(connector, conversation_id: str, stack: dict) -> None:
    """A stack as an older version may have saved it, in a conversation the bot already knows."""
    services.get().addresses.save(reference(connector.url, conversation_id), trusted=False)
    partition, row = state_keys("test", conversation_id)
    table().upsert_entity({"PartitionKey": partition, "RowKey": row, "ChannelId": "test",
                           "ConversationId": conversation_id, "Stack": json.dumps(stack, separators=(",", ":"))})


def chatting(name: str, *, jobs: list[str] | None = None) -> dict:
    return {"v": 1, "stack": [{"dialog": "main", "state": {"step": "chat", "name": name, "colour": "blue", "chats": 1}}],
            "jobs": jobs or []}


def test_a_hundred_turns_of_the_largest_answers_and_6000_character_activity_ids_all_answer_and_the_survey_still_works(
        app_env, connector):
    app_env.set(SurveyQuestions="How are you?|Rate us")
    conversation_limits_on_a_fake_clock()
    statuses = []
    for number in range(100):
        activity_id = f"{number:04d}{LONG_ID}"
        text = largest_text(connector, "conv-big", activity_id, "x" if number % 2 else "é")
        statuses.append(turn(connector, "conv-big", text, activity_id).status_code)

    started = NotifyFunction.main(http_request("POST", "http://localhost/api/notify",
                                               {"dialog": "survey", "to": {"conversation": "conv-big"}}))
    turn(connector, "conv-big", "fine")
    turn(connector, "conv-big", "5")

    assert statuses == [200] * 100
    assert json.loads(started.get_body()) == {"started": True}
    assert connector.texts("conv-big")[-4:-1] == ["Rate us", THANKS, BACK]
    assert [a.answer for a in services.get().survey_answers.answers("conv-big")] == ["fine", "5"]
    assert RESTARTED not in " ".join(connector.texts("conv-big"))
    assert limits.utf16_len(stored_stack("conv-big")) <= MAX_STACK_CHARS


def test_the_largest_answers_are_kept_and_repeated_clipped(app_env, connector):
    turn(connector, "conv-name", "hi")
    turn(connector, "conv-name", "N" * 15_000)
    turn(connector, "conv-name", "C" * 15_000)

    state = services.get().dialog_state.load("test", "conv-name")

    main = state.frames[0].state
    assert main["name"] == "N" * 999 + "…" and main["colour"] == "C" * 999 + "…"
    assert connector.texts("conv-name")[1] == f"Nice to meet you, {'N' * 999}…! What's your favourite colour?"


def test_an_over_long_survey_answer_is_stored_clipped(app_env, connector):
    app_env.set(SurveyQuestions="How are you?")
    turn(connector, "conv-s", "hi")
    NotifyFunction.main(http_request("POST", "http://localhost/api/notify",
                                     {"dialog": "survey", "to": {"conversation": "conv-s"}}))

    turn(connector, "conv-s", "A" * 50_000)

    [answer] = services.get().survey_answers.answers("conv-s")
    assert answer.answer == "A" * 999 + "…"


def test_long_activity_ids_are_remembered_by_digest_and_a_redelivery_is_still_recognised(app_env, connector):
    first = turn(connector, "conv-r", "hi", LONG_ID)
    replies = len(connector.texts("conv-r"))

    again = turn(connector, "conv-r", "hi", LONG_ID)

    assert (first.status_code, again.status_code) == (200, 200)
    assert len(connector.texts("conv-r")) == replies  # the channel's retry is answered once
    remembered = services.get().dialog_state.load("test", "conv-r").job_ids
    assert remembered and all(len(job_id) <= MAX_REMEMBERED_ID_CHARS for job_id in remembered)


def test_long_ids_remembered_in_full_by_older_state_are_brought_within_bounds(app_env, connector):
    older = [f"activity:{n}{LONG_ID}" for n in range(5)]
    write_stack(connector, "conv-old", chatting("Ada", jobs=older))

    repeated = turn(connector, "conv-old", "hi", f"4{LONG_ID}")
    fresh = turn(connector, "conv-old", "hello", "new-id")

    assert (repeated.status_code, fresh.status_code) == (200, 200)
    assert connector.texts("conv-old") == ["You said: hello"]  # the redelivered activity was recognised
    assert limits.utf16_len(stored_stack("conv-old")) < 2000


def test_state_already_too_large_restarts_at_the_main_dialog_with_a_warning(app_env, connector, caplog):
    write_stack(connector, "conv-huge", chatting("N" * 32_300))
    assert limits.utf16_len(stored_stack("conv-huge")) > MAX_STACK_CHARS

    with caplog.at_level(logging.WARNING):
        response = turn(connector, "conv-huge", "hello")

    assert response.status_code == 200
    assert connector.texts("conv-huge") == [RESTARTED, ASK_NAME]
    assert "restarting at the main dialog" in caplog.text
    assert limits.utf16_len(stored_stack("conv-huge")) < 1000


def test_a_turn_whose_state_would_outgrow_its_row_restarts_at_the_main_dialog(app_env, connector, caplog):
    # Saved by an older version within the limit; one more remembered id would take it over.
    base = len(json.dumps(chatting(""), separators=(",", ":")))
    write_stack(connector, "conv-edge", chatting("N" * (MAX_STACK_CHARS - base - 5)))

    with caplog.at_level(logging.WARNING):
        response = turn(connector, "conv-edge", "hello", "activity-1")
        after = turn(connector, "conv-edge", "Ada")

    assert (response.status_code, after.status_code) == (200, 200)
    assert RESTARTED in connector.texts("conv-edge")[0]
    assert connector.texts("conv-edge")[-1] == "Nice to meet you, Ada! What's your favourite colour?"
    assert "restarting at the main dialog" in caplog.text


@pytest.mark.parametrize("field, value", [("chats", "many"), ("chats", None), ("chats", [1])])
def test_a_stored_count_that_is_not_a_number_does_not_stick_the_conversation(app_env, connector, field, value):
    stack = chatting("Ada")
    stack["stack"][0]["state"][field] = value
    write_stack(connector, "conv-count", stack)

    response = turn(connector, "conv-count", "hello")

    assert response.status_code == 200
    assert connector.texts("conv-count") == ["You said: hello"]
