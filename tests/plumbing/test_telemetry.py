"""Outcome log lines: one per invocation, fields an operator filters on, never a credential."""

from __future__ import annotations

import base64
import json
import logging

import azure.functions as func
import pytest

from shared_code.plumbing import telemetry
from shared_code.plumbing.errors import BadInput, Upstream
from shared_code.plumbing.telemetry import Outcome

JWT = ".".join(
    base64.urlsafe_b64encode(part).rstrip(b"=").decode()
    for part in (b'{"alg":"RS256","typ":"JWT"}', b'{"aud":"app-id","exp":1893456000}', b"signature-bytes-" * 8)
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> logging.Logger:
    caplog.set_level(logging.DEBUG, logger="test.telemetry")
    return logging.getLogger("test.telemetry")


def _fields(line: str) -> dict[str, str]:
    # The documented KQL parse-kv reads the line the same way: space-separated key=value, values may be "quoted".
    import shlex

    return dict(part.split("=", 1) for part in shlex.split(line))


def test_telemetry_outcome_line_has_the_fields(log: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    started = clock.now
    clock.now += 0.042
    line = telemetry.log_outcome(log, "NotifyFunction", "inv-1", Outcome.OK, started=started, clock=clock,
                                 notification_id="n-42", sent=3, failed=0, status=200)
    assert line == ("outcome=ok function=NotifyFunction invocation_id=inv-1 notification_id=n-42 sent=3 failed=0 "
                    "status=200 duration_ms=42")
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [(logging.INFO, line)]


@pytest.mark.parametrize(
    ("outcome", "level"),
    [(Outcome.OK, logging.INFO), (Outcome.REFUSED, logging.WARNING), (Outcome.FAILED, logging.ERROR)],
)
def test_telemetry_outcome_sets_the_level(log: logging.Logger, caplog: pytest.LogCaptureFixture,
                                          outcome: Outcome, level: int) -> None:
    telemetry.log_outcome(log, "NotifyQueueFunction", "inv-2", outcome)
    assert [r.levelno for r in caplog.records] == [level]
    assert caplog.records[0].getMessage().startswith(f"outcome={outcome.value} function=NotifyQueueFunction ")


@pytest.mark.parametrize(("status", "outcome"), [(200, Outcome.OK), (202, Outcome.OK), (400, Outcome.REFUSED),
                                                 (404, Outcome.REFUSED), (413, Outcome.REFUSED), (500, Outcome.FAILED),
                                                 (502, Outcome.FAILED)])
def test_telemetry_status_maps_to_outcome(status: int, outcome: Outcome) -> None:
    assert telemetry.outcome_for_status(status) is outcome


def test_telemetry_writes_a_lone_surrogate_as_its_escape_so_the_line_can_be_encoded() -> None:
    line = telemetry.format_line({"notification_id": "n\ud800"})

    assert line == 'notification_id="n\\ud800"'
    assert json.loads(line.split("=", 1)[1]) == "n\ud800"  # the escape reads back as what came
    line.encode("utf-8")  # a UTF-8 handler can write it


def test_telemetry_values_with_spaces_are_quoted_and_none_is_left_out() -> None:
    line = telemetry.format_line({"outcome": Outcome.REFUSED, "reason": 'text is required (a "string")',
                                  "operation_id": None, "ratio": 0.5, "poisoned": True})
    assert line == 'outcome=refused reason="text is required (a \\"string\\")" ratio=0.5 poisoned=true'
    assert _fields(line)["reason"] == 'text is required (a "string")'


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        (JWT, JWT),
        (f"token was {JWT} and expired", JWT),
        ("Bearer x", "x"),
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ('{"Authorization": "Basic dXNlcjpwYXNz"}', "dXNlcjpwYXNz"),
        ("password=hunter2", "hunter2"),
        ('{"client_secret": "s3cr3t-value"}', "s3cr3t-value"),
        ("DefaultEndpointsProtocol=https;AccountName=st1;AccountKey=QUJDREVGR0g=;EndpointSuffix=core", "QUJDREVGR0g="),
        ("https://app.azurewebsites.net/api/notify?code=func-key-123&x=1", "func-key-123"),
        ("https://st.blob.core.windows.net/c/p.zip?sv=2022&sig=abc%2Fdef", "abc%2Fdef"),
        ("MicrosoftAppPassword: pa55", "pa55"),
    ],
)
def test_telemetry_redacts_credentials_in_values(value: str, secret: str) -> None:
    line = telemetry.format_line({"outcome": Outcome.FAILED, "detail": value})
    assert secret not in line
    assert "[redacted]" in line
    assert line.endswith(" redacted=1")


@pytest.mark.parametrize("key", ["password", "client_secret", "authorization", "access_token", "function_key",
                                 "MicrosoftAppPassword", "sig"])
def test_telemetry_redacts_fields_named_like_secrets(key: str) -> None:
    line = telemetry.format_line({"outcome": Outcome.OK, key: "plain-looking-value"})
    assert "plain-looking-value" not in line
    assert f"={telemetry.REDACTED}" in line


def test_telemetry_keeps_ordinary_values(log: logging.Logger) -> None:
    fields = {"notification_id": "n-1", "conversation": "a:1Xyz_-.@b", "url": "https://smba.trafficmanager.net/emea/",
              "module": "shared_code.protocol.connector.ConnectorClient", "error": "recipient_gone", "operation_id": "|abc.1|"}
    line = telemetry.log_outcome(log, "NotifyFunction", "inv", Outcome.OK, **fields)
    assert "redacted" not in line
    assert {k: _fields(line)[k] for k in fields} == fields


def test_telemetry_track_logs_an_http_error_response_with_its_code_and_operation_id(
        log: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    body = {"error": {"code": "upstream_error", "message": "connector failed", "operationId": "op-77"}}
    with telemetry.track(log, "NotifyFunction", "inv-3", clock=clock, notification_id="n-9") as t:
        clock.now += 0.25
        response = t.response(func.HttpResponse(json.dumps(body), status_code=502, mimetype="application/json"))
    assert response.status_code == 502
    assert t.line == ("outcome=failed function=NotifyFunction invocation_id=inv-3 notification_id=n-9 status=502 "
                      "error=upstream_error operation_id=op-77 duration_ms=250")
    assert [r.levelno for r in caplog.records] == [logging.ERROR]


def test_telemetry_track_logs_a_refused_request_as_warning(log: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    with telemetry.track(log, "MessagesFunction", "inv-4", clock=Clock()) as t:
        t.response(func.HttpResponse(json.dumps({"error": {"code": "bad_request"}}), status_code=400))
    assert t.line.startswith("outcome=refused function=MessagesFunction invocation_id=inv-4 status=400 error=bad_request ")
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_telemetry_track_logs_and_reraises_an_exception(log: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    error = Upstream("connector 503")
    error.operation_id = "op-5"
    with pytest.raises(Upstream), telemetry.track(log, "NotifyQueueFunction", "inv-5", clock=Clock(), dequeue_count=2):
        raise error
    assert caplog.records[-1].levelno == logging.ERROR
    assert caplog.records[-1].getMessage() == ("outcome=failed function=NotifyQueueFunction invocation_id=inv-5 "
                                               "dequeue_count=2 error=upstream_error operation_id=op-5 duration_ms=0")


def test_telemetry_track_counts_bad_input_as_refused(log: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(BadInput), telemetry.track(log, "NotifyQueueFunction", "inv-6", clock=Clock()):
        raise BadInput("not JSON")
    assert caplog.records[-1].levelno == logging.WARNING
    assert "error=bad_request" in caplog.records[-1].getMessage()


def test_telemetry_track_refused_marks_a_poisoned_message(log: logging.Logger, caplog: pytest.LogCaptureFixture) -> None:
    with telemetry.track(log, "NotifyQueueFunction", "inv-7", clock=Clock()) as t:
        t.refused("unknown version", poisoned=True)
    assert caplog.records[-1].levelno == logging.WARNING
    assert 'reason="unknown version"' in t.line and "poisoned=true" in t.line


def test_telemetry_redacting_filter_strips_other_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.telemetry.filter")
    handler = logging.Handler()
    records: list[logging.LogRecord] = []
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.propagate = False
    try:
        telemetry.install_redaction(logger)
        telemetry.install_redaction(logger)  # idempotent
        logger.warning("refused %s with %s", "Bearer abc123", JWT)
    finally:
        logger.removeHandler(handler)
    assert len(handler.filters) == 1
    assert records[0].getMessage() == "refused Bearer [redacted] with [redacted]"
