"""A survey in a group chat: the conversation's dialog, answered by whoever speaks, each answer kept with who gave it."""

from __future__ import annotations

import MessagesFunction
import NotifyQueueFunction
from shared_code.app import services
from tests.support.builders import dialog_job, http_request, queue_message
from tests.support.teams import ALEX, GROUP_CHAT_ID, MEGAN, payload


def say(connector, user_id: str, text: str, activity_id: str) -> None:
    activity = payload("group_chat_message", connector.url, id=activity_id, text=f"<at>Teams TestBot</at> {text}")
    activity["from"] = {"id": user_id, "name": user_id}
    assert MessagesFunction.main(http_request("POST", "http://localhost/api/messages", activity)).status_code == 200


def test_group_survey_records_each_answer_with_the_user_who_gave_it(app_env, connector):
    app_env.set(SurveyQuestions="Coffee or tea?|Window or aisle?")
    say(connector, MEGAN, "hi", "m1")
    NotifyQueueFunction.main(queue_message(dialog_job(GROUP_CHAT_ID, job_id="survey-1")))

    say(connector, MEGAN, "tea", "m2")
    say(connector, ALEX, "aisle", "m3")

    answers = services.get().survey_answers.answers(GROUP_CHAT_ID)
    assert [(a.question, a.answer, a.user_id) for a in answers] == [
        ("Coffee or tea?", "tea", MEGAN), ("Window or aisle?", "aisle", ALEX)]


def test_group_dialog_state_is_the_conversations_not_a_members(app_env, connector):
    say(connector, MEGAN, "hi", "m1")

    say(connector, ALEX, "Ada", "m2")

    frames = services.get().dialog_state.load("msteams", GROUP_CHAT_ID).frames
    assert frames[0].state["name"] == "Ada"
    assert connector.texts(GROUP_CHAT_ID)[-1] == "Nice to meet you, Ada! What's your favourite colour?"
