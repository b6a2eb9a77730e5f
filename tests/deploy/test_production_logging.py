"""Logging as the Python worker does it in Azure: the root logger at INFO, every record forwarded to the host
(and to Application Insights). The app itself keeps the SDKs' per-request lines and user ids out of it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import MessagesFunction
from shared_code.plumbing import telemetry
from tests.support.builders import http_request, message

TEAMS_USER = "29:1GcS4EyB_oSI8A88XmWBN7NJFyMqe3QGnJdgLfFGkJnVelzRGos0bPbpsfJjcbAD22bmKc4GMbrY2g4JDrqA8vQ"


class Context:
    invocation_id = "inv-prod"
    function_name = "MessagesFunction"
    function_directory = "."


@pytest.fixture
def sdk_loggers_unset() -> Iterator[None]:
    """The SDK loggers as a fresh worker process has them (NOTSET: they inherit the root's INFO), restored after."""
    saved = {name: logging.getLogger(name).level for name in telemetry.SDK_LOGGERS}
    for name in saved:
        logging.getLogger(name).setLevel(logging.NOTSET)
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def _turn(connector_url: str) -> None:
    response = MessagesFunction.main(http_request("POST", "http://x/api/messages", message(connector_url)), Context())
    assert response.status_code == 200


def test_a_turn_with_the_root_logger_at_info_logs_only_its_outcome_line(app_env, connector, caplog,
                                                                      sdk_loggers_unset) -> None:
    caplog.set_level(logging.INFO)  # what the worker sets on the root logger
    _turn(connector.url)  # the process's first invocation builds the services (and says it is in local mode)
    caplog.clear()

    _turn(connector.url)  # reads and writes Azurite tables: each call would add the SDK's request/response lines

    assert [(r.levelno, r.getMessage().split(" ", 2)[:2]) for r in caplog.records] == [
        (logging.INFO, ["outcome=ok", "function=MessagesFunction"])]


def test_the_app_quiets_the_sdk_loggers_on_its_first_invocation(app_env, connector, caplog, sdk_loggers_unset) -> None:
    caplog.set_level(logging.INFO)

    _turn(connector.url)

    assert [r.name for r in caplog.records if r.name.split(".")[0] in telemetry.SDK_LOGGERS] == []
    assert {name: logging.getLogger(name).getEffectiveLevel() for name in telemetry.SDK_LOGGERS} == \
        dict.fromkeys(telemetry.SDK_LOGGERS, logging.WARNING)


def test_teams_user_and_conversation_ids_never_reach_the_handlers() -> None:
    # The filter the app puts on the worker's handlers (install_redaction): whatever a line says, ids are gone.
    record = logging.LogRecord("shared_code.x", logging.WARNING, __file__, 1, "could not reach %s in %s",
                               (TEAMS_USER, "19:meeting_Njk4ZGE3@thread.v2"), None)

    telemetry.RedactingFilter().filter(record)

    assert record.getMessage() == "could not reach [user id] in [user id]"
