"""Dialogs end to end: messages, queue jobs and notify through the functions, state on Azurite."""

from __future__ import annotations

import json
import logging
import time

import pytest

import MessagesFunction
import NotifyFunction
import NotifyQueueFunction
from shared_code.app import services
from shared_code.conversation import dialogs
from shared_code.conversation.main_dialog import ASK_NAME, INTERRUPT_NOTICE
from shared_code.conversation.state import state_keys
from shared_code.conversation.survey import BACK, PROMPT, THANKS
from shared_code.conversation.turn import GREETING
from shared_code.plumbing.errors import BadInput, Throttled
from shared_code.storage import queues
from tests.support.builders import dialog_job, http_request, message, queue_message

COLOUR_AGAIN = "So, Ada, what's your favourite colour?"


def say(connector, conversation_id: str, text: str):
    return MessagesFunction.main(
        http_request("POST", "http://localhost/api/messages", message(connector.url, text, conversation_id=conversation_id))
    )


def run_job(job: dict) -> None:
    NotifyQueueFunction.main(queue_message(job))


def notify(body: object):
    return NotifyFunction.main(http_request("POST", "http://localhost/api/notify", body))


def dialog_ids(conversation_id: str) -> list[str]:
    return [f.dialog_id for f in services.get().dialog_state.load("test", conversation_id).frames]


def poison_records() -> list[dict]:
    poison = services.get().queue(f"{services.get().settings.jobs_queue}-poison")
    return [json.loads(queues.decode_base64_text(m.content)) for m in poison.receive_messages(max_messages=32)]


def test_survey_interrupts_the_main_dialog_which_resumes_its_pending_question(app_env, connector):
    say(connector, "conv-t", "hi")
    say(connector, "conv-t", "Ada")

    run_job(dialog_job("conv-t"))
    say(connector, "conv-t", "who are you?")
    say(connector, "conv-t", "blue")
    say(connector, "conv-t", " Done ")
    say(connector, "conv-t", "green")

    texts = connector.texts("conv-t")
    assert texts[:7] == [
        GREETING,
        "Nice to meet you, Ada! What's your favourite colour?",
        PROMPT,
        PROMPT,
        PROMPT,
        BACK,
        COLOUR_AGAIN,
    ]
    assert texts[7].startswith("green, a fine colour, Ada.") and len(texts) == 8
    assert dialog_ids("conv-t") == ["main"]


@pytest.mark.slow
def test_survey_command_announces_then_a_delayed_job_starts_the_survey(app_env, connector):
    say(connector, "conv-s", "hi")

    response = say(connector, "conv-s", "Survey")
    announced = time.monotonic()

    assert response.status_code == 200
    assert connector.texts("conv-s")[1:] == [
        INTERRUPT_NOTICE,
        "You can also make me send a message by accessing: http://localhost:7071/api/notify",
    ]
    queue = services.get().queue()
    assert list(queue.receive_messages(visibility_timeout=30)) == []
    received = []
    while not received and time.monotonic() - announced < 10:
        time.sleep(0.25)
        received = list(queue.receive_messages(visibility_timeout=30))
    waited = time.monotonic() - announced
    assert len(received) == 1 and 3.5 <= waited < 10
    body = queues.decode_base64_text(received[0].content)
    job = json.loads(body)
    assert job == {"v": 1, "kind": "dialog", "dialog": "survey", "id": job["id"], "to": {"conversation": "conv-s"}}

    NotifyQueueFunction.main(queue_message(body))

    assert connector.texts("conv-s")[-1] == PROMPT
    assert dialog_ids("conv-s") == ["main", "survey"]


def test_the_same_dialog_job_delivered_twice_pushes_one_survey(app_env, connector):
    say(connector, "conv-2", "hi")
    job = dialog_job("conv-2")

    run_job(job)
    run_job(job)

    assert connector.texts("conv-2").count(PROMPT) == 1
    assert dialog_ids("conv-2") == ["main", "survey"]
    assert job["id"] in services.get().dialog_state.load("test", "conv-2").job_ids


def test_a_conversation_already_in_a_survey_gets_no_second_one(app_env, connector):
    say(connector, "conv-3", "hi")

    first = notify({"dialog": "survey", "to": {"conversation": "conv-3"}})
    second = notify({"dialog": "survey", "to": {"conversation": "conv-3"}})

    assert (first.status_code, json.loads(first.get_body())) == (200, {"started": True})
    assert (second.status_code, json.loads(second.get_body())) == (200, {"started": False})
    assert connector.texts("conv-3") == [GREETING, PROMPT]
    assert dialog_ids("conv-3") == ["main", "survey"]


def test_notify_still_sends_text_messages(app_env, connector):
    say(connector, "conv-4", "hi")

    response = notify({"text": "plain news", "to": {"conversation": "conv-4"}})

    assert response.status_code == 200
    assert connector.texts("conv-4") == [GREETING, "plain news"]
    assert dialog_ids("conv-4") == ["main"]


def test_notify_with_an_unknown_dialog_is_a_400_and_sends_nothing(app_env, connector):
    say(connector, "conv-5", "hi")

    unknown = notify({"dialog": "quiz", "to": {"conversation": "conv-5"}})

    assert unknown.status_code == 400 and "unknown dialog" in json.loads(unknown.get_body())["error"]["message"]
    assert connector.texts("conv-5") == [GREETING]


def test_notify_a_dialog_to_many_is_a_queued_broadcast(app_env, connector):
    say(connector, "conv-5", "hi")

    many = notify({"dialog": "survey", "to": "all"})

    assert many.status_code == 202
    assert json.loads(many.get_body())["created"] is True
    assert connector.texts("conv-5") == [GREETING]  # nothing is sent before the queue runs it


def test_unknown_dialog_in_a_queue_job_goes_to_poison_with_the_reason(app_env, connector):
    say(connector, "conv-6", "hi")
    job = dialog_job("conv-6", dialog="quiz")

    run_job(job)

    [record] = poison_records()
    assert "unknown dialog 'quiz'" in record["reason"]
    assert json.loads(record["message"]) == job
    assert connector.texts("conv-6") == [GREETING]


def test_begin_dialog_with_an_unknown_name_is_bad_input(app_env, connector):
    say(connector, "conv-7", "hi")
    address = services.get().addresses.get("conv-7")

    with pytest.raises(BadInput, match="unknown dialog"):
        dialogs.begin_dialog(address, "quiz", "job-1", services.get())

    assert dialog_ids("conv-7") == ["main"]


CORRUPT_STACKS = {
    "not json": "{oops",
    "unknown dialog id": json.dumps({"v": 1, "stack": [{"dialog": "main", "state": {}},
                                                       {"dialog": "quiz", "state": {}}], "jobs": []}),
    "unknown format": json.dumps({"v": 99}),
}


@pytest.mark.parametrize("name", CORRUPT_STACKS)
def test_corrupt_state_restarts_at_the_main_dialog_with_a_warning(app_env, connector, caplog, name):
    say(connector, "conv-c", "hi")
    say(connector, "conv-c", "Ada")
    table = services.get().table_service.get_table_client(app_env.values["DialogStateTableName"])
    partition, row = state_keys("test", "conv-c")
    table.upsert_entity({"PartitionKey": partition, "RowKey": row, "Stack": CORRUPT_STACKS[name]})

    with caplog.at_level(logging.WARNING, logger="shared_code.conversation.dialogs"):
        response = say(connector, "conv-c", "green")

    assert response.status_code == 200
    assert connector.texts("conv-c")[2:] == [dialogs.RESTARTED, ASK_NAME]
    assert any("restarting at the main dialog" in r.getMessage() for r in caplog.records)
    assert dialog_ids("conv-c") == ["main"]
    say(connector, "conv-c", "Ada")
    assert connector.texts("conv-c")[-1] == "Nice to meet you, Ada! What's your favourite colour?"


def test_survey_answers_are_stored_when_questions_are_configured(app_env, connector):
    app_env.set(SurveyQuestions="How are you? | Rate us from 1 to 5")
    say(connector, "conv-q", "hi")
    say(connector, "conv-q", "Ada")
    job = dialog_job("conv-q")

    run_job(job)
    say(connector, "conv-q", "fine, thanks")
    say(connector, "conv-q", "5")

    assert connector.texts("conv-q")[2:] == [PROMPT, "How are you?", "Rate us from 1 to 5", THANKS, BACK, COLOUR_AGAIN]
    answers = services.get().survey_answers.answers("conv-q")
    assert [(a.run_id, a.index, a.question, a.answer) for a in answers] == [
        (job["id"], 0, "How are you?", "fine, thanks"),
        (job["id"], 1, "Rate us from 1 to 5", "5"),
    ]
    assert all(a.answered_at is not None for a in answers)


def test_done_ends_a_survey_with_questions_early_keeping_the_answers_given(app_env, connector):
    app_env.set(SurveyQuestions="How are you?|Rate us from 1 to 5")
    say(connector, "conv-d", "hi")
    job = dialog_job("conv-d")

    run_job(job)
    say(connector, "conv-d", "fine")
    say(connector, "conv-d", "DONE")

    assert connector.texts("conv-d")[-2:] == [BACK, ASK_NAME]
    assert [a.answer for a in services.get().survey_answers.answers("conv-d")] == ["fine"]


def test_a_survey_for_a_conversation_that_never_talked_returns_to_the_main_dialog(app_env, connector):
    # GIVEN an address with no dialog state (saved before dialogs existed, or the state was deleted)
    say(connector, "conv-n", "hi")
    table = services.get().table_service.get_table_client(app_env.values["DialogStateTableName"])
    table.delete_entity(*state_keys("test", "conv-n"))

    run_job(dialog_job("conv-n"))
    say(connector, "conv-n", "done")

    assert connector.texts("conv-n")[1:] == [PROMPT, BACK, ASK_NAME]


def test_an_activity_the_channel_posts_twice_is_answered_and_applied_once(app_env, connector):
    say(connector, "conv-dup", "hi")
    again = message(connector.url, "Ada", conversation_id="conv-dup")

    for _ in range(2):  # the channel retries the same activity (same id)
        response = MessagesFunction.main(http_request("POST", "http://localhost/api/messages", again))
        assert response.status_code == 200
    say(connector, "conv-dup", "green")

    texts = connector.texts("conv-dup")
    assert texts[:2] == [GREETING, "Nice to meet you, Ada! What's your favourite colour?"]
    assert texts[2].startswith("green, a fine colour, Ada.") and len(texts) == 3


def test_a_survey_whose_prompt_could_not_be_sent_starts_again_on_the_retry(app_env, connector):
    from stubs.connector import Fault

    say(connector, "conv-429", "hi")
    job = dialog_job("conv-429")
    connector.fail_next("conv-429", Fault(503), times=3)  # more than the send's own retries

    with pytest.raises(Throttled):  # the function raises, so the host delivers the job again
        run_job(job)
    run_job(job)

    assert connector.texts("conv-429") == [GREETING, PROMPT]
    assert dialog_ids("conv-429") == ["main", "survey"]
