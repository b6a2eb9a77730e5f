"""/api/notify and queue jobs under hostile input: refused with a JSON 4xx, or poisoned at once with the reason,
never a 500, a host retry or a traceback, and nothing stored for a refused one."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import MessagesFunction
import NotifyFunction
import NotifyQueueFunction
from shared_code.app import services
from tests.support import hostile, stored
from tests.support.builders import dialog_job, http_request, message, queue_message, reference
from tests.support.queue_driver import QueueDriver

BASE_JOBS = [
    {"v": 1, "kind": "message", "to": "all", "text": "hi"},
    {"v": 1, "kind": "message", "to": {"conversation": "c-1"}, "text": "hi", "id": "n-1", "locale": "en-US"},
    {"v": 1, "kind": "dialog", "dialog": "survey", "to": {"conversation": "c-1"}},
    {"v": 1, "to": {"user": "u-1"}, "text": {"en": "hi", "fr": "salut"}, "defaultLocale": "en",
     "notBefore": "2026-12-01T09:00:00Z"},
    {"v": 1, "to": {"channel": "test"}, "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                                                         "content": {"type": "AdaptiveCard", "version": "1.5"}}]},
]
INTERNAL_JOBS = [
    {"v": 1, "kind": "scan", "notification": "n-x", "index": 0, "continuation": None},
    {"v": 1, "kind": "page", "notification": "n-x", "page": "000000", "keys": [["test", "c-1"]], "attempt": 1},
    {"v": 1, "kind": "watch", "notification": "n-x", "page": "000000", "run": "a1" * 16, "attempt": 1},
]
JOB_PATHS = [("v",), ("kind",), ("id",), ("to",), ("to", "conversation"), ("to", "user"), ("to", "channel"),
             ("text",), ("text", "en"), ("locale",), ("notBefore",), ("attachments",), ("suggestedActions",),
             ("defaultLocale",), ("dialog",)]
INTERNAL_PATHS = [("v",), ("notification",), ("index",), ("continuation",), ("page",), ("keys",), ("attempt",),
                  ("run",)]
HOSTILE = settings(max_examples=40, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                          HealthCheck.data_too_large, HealthCheck.large_base_example])
public_jobs = st.tuples(st.sampled_from(BASE_JOBS), hostile.changes(JOB_PATHS))
any_jobs = st.one_of(public_jobs, st.tuples(st.sampled_from(INTERNAL_JOBS), hostile.changes(INTERNAL_PATHS)))


@pytest.fixture
def seeded(app_env, connector):
    services.get().addresses.save(reference(connector.url, "c-1", user_id="u-1"), trusted=False)
    return app_env


def notify(raw: bytes):
    return NotifyFunction.main(http_request("POST", "http://localhost/api/notify", raw=raw))


def run_job(raw: bytes) -> None:
    NotifyQueueFunction.main(queue_message(raw))


def poisoned(app_env) -> list[dict]:
    driver = QueueDriver(app_env.values["AzureWebJobsStorage"], app_env.values["JobsQueueName"])
    return [json.loads(text) for text in driver.poisoned()]


def poison_count(app_env) -> int:
    return stored.queue_count(app_env.values["AzureWebJobsStorage"], app_env.values["JobsQueueName"] + "-poison")


@HOSTILE
@given(job=public_jobs)
def test_a_hostile_notify_body_is_answered_without_a_500_or_a_traceback(seeded, caplog, job):
    base, edits = job
    raw = hostile.dumps({k: v for k, v in hostile.mutated(base, edits).items() if k != "v"})
    caplog.clear()

    with caplog.at_level(logging.DEBUG):
        response = notify(raw)

    assert response.status_code in (200, 202, 400, 404, 409, 413), response.get_body()[:300]
    assert hostile.tracebacks(caplog.records) == []


@pytest.mark.slow
@HOSTILE
@given(job=public_jobs)
def test_a_refused_hostile_notify_body_stores_nothing_and_says_why(seeded, job):
    base, edits = job
    raw = hostile.dumps({k: v for k, v in hostile.mutated(base, edits).items() if k != "v"})
    before = stored.snapshot(seeded)

    response = notify(raw)

    if response.status_code >= 400:
        assert json.loads(response.get_body())["error"]["message"]
        assert stored.snapshot(seeded) == before


@HOSTILE
@given(job=any_jobs)
def test_a_hostile_queue_job_is_run_or_poisoned_never_retried_and_never_traced(seeded, caplog, job):
    base, edits = job
    raw = hostile.dumps(hostile.mutated(base, edits))
    caplog.clear()

    with caplog.at_level(logging.DEBUG):
        run_job(raw)  # raising would hand the message to the host's retries

    assert hostile.tracebacks(caplog.records) == []


@pytest.mark.slow
@HOSTILE
@given(job=any_jobs)
def test_a_poisoned_hostile_queue_job_stores_nothing_and_says_why(seeded, job):
    base, edits = job
    raw = hostile.dumps(hostile.mutated(base, edits))
    before, poison_before = stored.snapshot(seeded), poison_count(seeded)

    run_job(raw)

    if poison_count(seeded) > poison_before:
        assert stored.snapshot(seeded) == before
        assert all(record["reason"] for record in poisoned(seeded))


def test_a_lone_surrogate_in_a_notification_id_is_a_400(seeded):
    response = notify(json.dumps({"id": "n\udc00", "to": "all", "text": "hi"}).encode())

    assert response.status_code == 400
    assert "lone surrogate" in json.loads(response.get_body())["error"]["message"]


def test_a_lone_surrogate_in_a_text_is_poisoned_at_once_with_the_reason(seeded):
    run_job(json.dumps({"v": 1, "to": "all", "text": "a\ud800b"}).encode())

    [record] = poisoned(seeded)
    assert "lone surrogate" in record["reason"] and "$.text" in record["reason"]


def test_a_notify_body_nested_ten_thousand_deep_is_a_400(seeded):
    response = notify(hostile.dumps({"to": "all", "text": "hi", "attachments": hostile.Deep(10_000)}))

    assert response.status_code == 400
    assert "nested deeper than 64" in json.loads(response.get_body())["error"]["message"]


def test_a_queue_job_nested_ten_thousand_deep_is_poisoned_at_once_with_the_reason(seeded):
    run_job(hostile.dumps({"v": 1, "to": "all", "text": "hi", "attachments": hostile.Deep(10_000, "{")}))

    [record] = poisoned(seeded)
    assert "nested deeper than 64" in record["reason"]


@pytest.mark.parametrize("not_before", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_not_before_at_the_ends_of_the_date_range_is_a_400_and_stores_nothing(seeded, not_before):
    before = stored.snapshot(seeded)

    response = notify(json.dumps({"to": "all", "text": "hi", "notBefore": not_before}).encode())

    assert response.status_code == 400
    assert "outside the supported range" in json.loads(response.get_body())["error"]["message"]
    assert stored.snapshot(seeded) == before


@pytest.mark.parametrize("not_before", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_not_before_at_the_ends_of_the_date_range_is_poisoned_at_once_with_the_reason(seeded, not_before):
    run_job(json.dumps({"v": 1, "to": "all", "text": "hi", "notBefore": not_before}).encode())

    [record] = poisoned(seeded)
    assert "outside the supported range" in record["reason"]


@pytest.mark.parametrize("job", [{"v": True, "to": "all", "text": "hi"},
                                 {"v": True, "kind": "scan", "notification": "n-x", "index": 0}])
def test_v_true_is_not_version_1(seeded, job):
    run_job(json.dumps(job).encode())

    [record] = poisoned(seeded)
    assert "unknown job version True" in record["reason"]


@pytest.mark.parametrize("kind", [[], ["scan"], {"page": 1}, 7])
def test_a_kind_that_is_not_a_string_is_poisoned_at_once(seeded, kind):
    run_job(json.dumps({"v": 1, "kind": kind, "to": "all", "text": "hi"}).encode())  # does not raise

    [record] = poisoned(seeded)
    assert "unknown job kind" in record["reason"]


def test_a_text_that_would_outgrow_the_notifications_row_is_a_400(seeded):
    # 28 KiB of control characters: within the message limit, six times longer once JSON escapes them.
    response = notify(json.dumps({"to": "all", "text": "hi" + "\x01" * 20_000}).encode())

    assert response.status_code == 400
    assert "the notification is longer than 32000 characters" in json.loads(response.get_body())["error"]["message"]


def test_an_over_long_audience_id_is_a_400(seeded):
    response = notify(json.dumps({"to": {"user": "u" * 1025}, "text": "hi"}).encode())

    assert response.status_code == 400
    assert "to.user is longer than 1024" in json.loads(response.get_body())["error"]["message"]


def test_a_status_request_for_an_ill_formed_id_is_a_400(seeded):
    response = NotifyFunction.main(http_request("GET", "http://localhost/api/notify/x", route_params={"id": "n\ud800"}))

    assert response.status_code == 400


# A dialog job to a conversation whose serviceUrl no authenticated activity vouched for.

APP_ID = "test-app-id"


def test_a_dialog_job_for_an_untrusted_service_url_is_poisoned_at_once_with_the_reason(app_env, connector, token_stub):
    MessagesFunction.main(http_request("POST", "http://localhost/api/messages",
                                       message(connector.url, "hi", conversation_id="conv-u")))  # local mode: unverified
    sent_before = len(connector.requests)
    app_env.set(MicrosoftAppId=APP_ID, MicrosoftAppPassword="test-app-password",
                ToChannelFromBotLoginUrl=token_stub.login_url())

    run_job(json.dumps(dialog_job("conv-u")).encode())  # does not raise: no retries

    [record] = poisoned(app_env)
    assert record["reason"].startswith("untrusted_service_url:")
    assert len(connector.requests) == sent_before
    assert token_stub.fetches == 0
    state = services.get().dialog_state.load("test", "conv-u")
    assert [frame.dialog_id for frame in state.frames] == ["main"]


def test_a_dialog_job_for_an_untrusted_service_url_leaves_the_dialog_state_untouched(app_env, connector, token_stub):
    MessagesFunction.main(http_request("POST", "http://localhost/api/messages",
                                       message(connector.url, "hi", conversation_id="conv-u")))  # local mode: unverified
    app_env.set(MicrosoftAppId=APP_ID, MicrosoftAppPassword="test-app-password",
                ToChannelFromBotLoginUrl=token_stub.login_url())
    before = stored.snapshot(app_env)

    run_job(json.dumps(dialog_job("conv-u")).encode())

    assert stored.snapshot(app_env) == before
