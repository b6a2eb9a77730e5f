"""A user's message and a proactive survey start racing on one conversation: both take effect, once."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable

import pytest

import MessagesFunction
import NotifyQueueFunction
from shared_code.app import services
from shared_code.conversation.state import ConversationState, DialogStateStore, StateConflict
from shared_code.conversation.survey import PROMPT
from shared_code.conversation.turn import GREETING
from tests.support.builders import dialog_job, http_request, message, queue_message

NAME_REPLY = "Nice to meet you, Ada! What's your favourite colour?"


def say(service_url: str, conversation_id: str, text: str) -> None:
    response = MessagesFunction.main(
        http_request("POST", "http://localhost/api/messages", message(service_url, text, conversation_id=conversation_id))
    )
    assert response.status_code == 200, response.get_body()


def run_job(job: dict) -> None:
    NotifyQueueFunction.main(queue_message(job))


class InterleavingStore:
    """The real store, with another writer let in once between a turn's read and its save."""

    def __init__(self, inner: DialogStateStore, meanwhile: Callable[[], None]) -> None:
        self._inner = inner
        self._meanwhile: Callable[[], None] | None = meanwhile
        self.conflicts = 0

    def load(self, channel_id: str, conversation_id: str) -> ConversationState:
        return self._inner.load(channel_id, conversation_id)

    def save(self, state: ConversationState) -> None:
        if self._meanwhile is not None:
            meanwhile, self._meanwhile = self._meanwhile, None
            meanwhile()
        try:
            self._inner.save(state)
        except StateConflict:
            self.conflicts += 1
            raise


def interleave(meanwhile: Callable[[], None]) -> InterleavingStore:
    app = services.get()
    store = InterleavingStore(app.dialog_state, meanwhile)
    app.__dict__["dialog_state"] = store  # what the cached_property holds
    return store


def assert_both_took_effect(connector, conversation_id: str, job_id: str) -> None:
    state = services.get().dialog_state.load("test", conversation_id)
    assert [f.dialog_id for f in state.frames] == ["main", "survey"]
    main, survey = state.frames
    named = main.state.get("name") == "Ada"
    surveyed = survey.state.get("seen") == 1
    assert named != surveyed, (main.state, survey.state)  # the user's message went to exactly one dialog
    assert job_id in state.job_ids
    texts = connector.texts(conversation_id)
    assert texts[0] == GREETING
    assert sorted(texts[1:]) == sorted([NAME_REPLY if named else PROMPT, PROMPT])


def test_survey_start_overtaken_by_the_users_turn_keeps_the_users_answer(app_env, connector):
    say(connector.url, "conv-r", "hi")
    job = dialog_job("conv-r")
    store = interleave(lambda: say(connector.url, "conv-r", "Ada"))

    run_job(job)

    assert store.conflicts == 1
    assert_both_took_effect(connector, "conv-r", job["id"])
    main, survey = services.get().dialog_state.load("test", "conv-r").frames
    assert main.state == {"step": "colour", "name": "Ada"}
    assert connector.texts("conv-r") == [GREETING, NAME_REPLY, PROMPT]


def test_users_turn_overtaken_by_the_survey_start_goes_to_the_survey_and_replies_once(app_env, connector):
    say(connector.url, "conv-r", "hi")
    job = dialog_job("conv-r")
    store = interleave(lambda: run_job(job))

    say(connector.url, "conv-r", "Ada")

    assert store.conflicts == 1
    assert_both_took_effect(connector, "conv-r", job["id"])
    assert connector.texts("conv-r") == [GREETING, PROMPT, PROMPT]


def test_concurrent_user_turns_and_survey_starts_in_threads_lose_nothing(app_env, connector):
    rounds = [(f"conv-{i}", dialog_job(f"conv-{i}")) for i in range(20)]
    for conversation_id, _ in rounds:
        say(connector.url, conversation_id, "hi")
    errors: list[BaseException] = []

    for conversation_id, job in rounds:
        start = threading.Barrier(2)
        threads = [
            threading.Thread(target=_guarded, args=(errors, start, say, connector.url, conversation_id, "Ada")),
            threading.Thread(target=_guarded, args=(errors, start, run_job, job)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    assert errors == []
    for conversation_id, job in rounds:
        assert_both_took_effect(connector, conversation_id, job["id"])


def test_concurrent_user_turns_and_survey_starts_in_two_processes_lose_nothing(app_env, connector):
    rounds = [(f"conv-p{i}", dialog_job(f"conv-p{i}")) for i in range(12)]
    for conversation_id, _ in rounds:
        say(connector.url, conversation_id, "hi")
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters: nothing shared but Azurite and the stub
    start = spawn.Barrier(2)
    workers = [
        spawn.Process(target=_user_process, args=(start, connector.url, [c for c, _ in rounds])),
        spawn.Process(target=_survey_process, args=(start, [job for _, job in rounds])),
    ]

    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)

    assert [w.exitcode for w in workers] == [0, 0]
    for conversation_id, job in rounds:
        assert_both_took_effect(connector, conversation_id, job["id"])


def _guarded(errors: list[BaseException], start: threading.Barrier, target: Callable[..., None], *args: object) -> None:
    try:
        start.wait(10)
        target(*args)
    except BaseException as exc:  # noqa: BLE001 - reported by the test thread
        errors.append(exc)


def _user_process(start, service_url: str, conversation_ids: list[str]) -> None:
    for conversation_id in conversation_ids:
        start.wait(30)  # each round starts both processes together
        say(service_url, conversation_id, "Ada")


def _survey_process(start, job_list: list[dict]) -> None:
    for job in job_list:
        start.wait(30)
        run_job(job)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
