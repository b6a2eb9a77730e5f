"""TimerSurveyFunction: each occurrence starts one survey broadcast, through the dialog stack."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.functions.timer import TimerRequest

import MessagesFunction
import NotifyQueueFunction
import TimerSurveyFunction
from devhost.app import AppError as HostError
from devhost.host import Host
from shared_code.app import services
from shared_code.conversation.survey import BACK, PROMPT
from shared_code.notifications.upkeep import timer_survey
from shared_code.plumbing.errors import ConfigError
from tests.support.builders import conversation_update, dialog_job, http_request, message, queue_message
from tests.support.queue_driver import QueueDriver

ROOT = Path(__file__).resolve().parents[3]


def say(connector, conversation_id: str, text: str) -> None:
    MessagesFunction.main(http_request("POST", "http://localhost/api/messages",
                                       message(connector.url, text, conversation_id=conversation_id)))


def drain(app_env, notification_id: str) -> dict:
    def done() -> bool:
        found = services.get().notifications.status(notification_id)
        return found is not None and found.to_json()["state"] == "done"

    QueueDriver(app_env.values["AzureWebJobsStorage"], app_env.values["JobsQueueName"]).run_until(done, timeout=60)
    return services.get().notifications.status(notification_id).to_json()


def fire(past_due: bool = False) -> None:
    TimerSurveyFunction.main(TimerRequest(past_due=past_due))


def occurrence_now() -> str:
    schedule = services.get().settings.survey_schedule
    from shared_code.plumbing.ncrontab import parse_schedule

    occurrence = parse_schedule(schedule).previous(datetime.now(UTC).replace(tzinfo=None)).replace(tzinfo=UTC)
    return timer_survey.occurrence_id(occurrence)


@pytest.fixture
def audience(app_env, connector):
    """a, b, c active (c already in a survey started by hand), d removed the bot."""
    app_env.set(SurveySchedule="0 */10 * * * *", RetryDelayScale="0.01")
    for conversation in ("a", "b", "c", "d"):
        say(connector, conversation, "hi")
        say(connector, conversation, "Ada")  # the main dialog now waits for a colour
    NotifyQueueFunction.main(queue_message(dialog_job("c")))
    MessagesFunction.main(http_request("POST", "http://localhost/api/messages",
                                       conversation_update(connector.url, "d", removed=["bot-1"])))
    return {c: len(connector.texts(c)) for c in ("a", "b", "c", "d")}


def test_a_firing_interrupts_each_active_user_not_already_in_a_survey(app_env, connector, audience):
    fire()
    got = drain(app_env, occurrence_now())

    new = {c: connector.texts(c)[audience[c]:] for c in audience}
    assert new == {"a": [PROMPT], "b": [PROMPT], "c": [], "d": []}
    assert got["sent"] == 2 and got["total"] == 3 and got["skipped"]["inactive"] == 1


def test_after_done_the_interrupted_dialog_resumes_where_it_stood(app_env, connector, audience):
    fire()
    drain(app_env, occurrence_now())

    say(connector, "a", "fine, thanks")
    say(connector, "a", "done")

    assert connector.texts("a")[-3:] == [PROMPT, BACK, "So, Ada, what's your favourite colour?"]


def test_a_second_firing_for_the_same_occurrence_starts_nothing_new(app_env, connector, audience):
    fire()
    fire()  # another instance, a restart, runOnStartup: the same occurrence
    got = drain(app_env, occurrence_now())

    assert [connector.texts(c)[audience[c]:] for c in ("a", "b")] == [[PROMPT], [PROMPT]]
    assert got["sent"] == 2


def test_a_past_due_firing_still_starts_the_survey_and_says_how_late(app_env, connector, audience, caplog):
    with caplog.at_level(logging.WARNING, logger="shared_code.notifications.upkeep.timer_survey"):
        fire(past_due=True)
    drain(app_env, occurrence_now())

    assert connector.texts("a")[audience["a"]:] == [PROMPT]
    assert any("past due" in r.getMessage() and " s late" in r.getMessage() for r in caplog.records)


def test_a_firing_with_no_saved_users_is_a_normal_empty_broadcast(app_env, connector):
    fire()
    got = drain(app_env, occurrence_now())

    assert got["total"] == 0 and got["state"] == "done"
    assert connector.all_activities() == {}


def test_the_timer_only_enqueues_it_sends_nothing_itself(app_env, connector, audience):
    fire()

    assert {c: len(connector.texts(c)) for c in audience} == audience


def test_the_audience_setting_can_name_one_channel(app_env, connector):
    app_env.set(SurveyAudience="channel:msteams")

    job = timer_survey.on_timer(False, services.get())

    assert job["to"] == {"channel": "msteams"}


@pytest.mark.parametrize("bad", ["0 9 * * *", "every day", "0 0 25 * * *"])
def test_a_bad_schedule_is_a_clear_error_naming_the_setting(app_env, bad):
    app_env.set(SurveySchedule=bad)

    with pytest.raises(ConfigError, match="SurveySchedule"):
        fire()


def test_the_local_host_refuses_to_start_with_a_bad_schedule_naming_the_setting(app_env, monkeypatch):
    monkeypatch.setenv("SurveySchedule", "0 0 25 * * *")
    environment = dict(os.environ)  # the host copies local.settings.json into the environment

    try:
        with pytest.raises(HostError) as raised:
            Host(ROOT, port=0).start()
    finally:
        os.environ.clear()
        os.environ.update(environment)

    assert "TimerSurveyFunction" in str(raised.value) and "SurveySchedule" in str(raised.value)
