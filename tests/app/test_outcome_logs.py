"""Every function ends each invocation with one structured outcome line, at a level an operator can filter."""

from __future__ import annotations

import logging

from azure.functions.timer import TimerRequest

import MessagesFunction
import NotifyFunction
import NotifyQueueFunction
import PurgeFunction
import TimerSurveyFunction
from tests.support.builders import http_request, message, queue_message


class Context:
    """What the worker passes as `context`."""

    invocation_id = "inv-123"
    function_name = "test"
    function_directory = "."


def outcome_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("outcome=")]


def test_a_served_turn_logs_one_ok_line_with_the_invocation_id(app_env, connector, caplog):
    caplog.set_level(logging.INFO)

    MessagesFunction.main(http_request("POST", "http://x/api/messages", message(connector.url)), Context())

    [line] = outcome_lines(caplog)
    assert line.levelno == logging.INFO
    assert "function=MessagesFunction" in line.getMessage() and "invocation_id=inv-123" in line.getMessage()
    assert "status=200" in line.getMessage() and "duration_ms=" in line.getMessage()


def test_a_refused_request_logs_a_warning_with_the_error_code(app_env, caplog):
    caplog.set_level(logging.INFO)

    NotifyFunction.main(http_request("POST", "http://x/api/notify", raw=b"{nope"), Context())

    [line] = outcome_lines(caplog)
    assert line.levelno == logging.WARNING
    assert "outcome=refused" in line.getMessage() and "error=bad_request" in line.getMessage()


def test_a_poisoned_queue_message_logs_a_warning_with_the_reason(app_env, caplog):
    caplog.set_level(logging.INFO)

    NotifyQueueFunction.main(queue_message({"v": 9, "kind": "message"}), Context())

    [line] = outcome_lines(caplog)
    assert line.levelno == logging.WARNING
    assert "poisoned=true" in line.getMessage().lower() and "unknown job version" in line.getMessage()


def test_the_timer_logs_the_notification_it_started(app_env, caplog):
    caplog.set_level(logging.INFO)

    TimerSurveyFunction.main(TimerRequest(past_due=False), Context())

    [line] = outcome_lines(caplog)
    assert line.levelno == logging.INFO and "notification_id=survey-" in line.getMessage()


def test_a_bearer_token_in_a_log_message_never_reaches_the_handlers(app_env, connector, caplog):
    caplog.set_level(logging.INFO)
    MessagesFunction.main(http_request("POST", "http://x/api/messages", message(connector.url)), Context())
    handler = logging.getLogger().handlers[0]
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent Authorization: Bearer abc.def.ghi", None, None)

    for log_filter in handler.filters:
        log_filter.filter(record)

    assert "abc.def.ghi" not in record.getMessage()


def test_the_purge_logs_what_it_deleted(app_env, caplog):
    caplog.set_level(logging.INFO)

    PurgeFunction.main(TimerRequest(past_due=False), Context())

    [line] = outcome_lines(caplog)
    assert line.levelno == logging.INFO
    assert "function=PurgeFunction" in line.getMessage() and "addresses=0" in line.getMessage()
