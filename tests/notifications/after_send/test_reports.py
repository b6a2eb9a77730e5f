"""CSV reports: GET /api/notify/{id}/report (one row per recipient) and GET /api/surveys/{runId}/answers."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import MessagesFunction
import SurveysFunction
from shared_code.app import services
from shared_code.conversation.survey import SurveyAnswer
from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference
from shared_code.storage.keys import encode_key
from stubs.connector import Fault
from tests.support.builders import http_request, message, read_receipt
from tests.support.notify_calls import call, drain, seed, status


def report(notification_id: str):
    url = f"http://bot.example:7071/api/notify/{notification_id}/report"
    from NotifyFunction import main

    return main(http_request("GET", url, route_params={"id": notification_id, "action": "report"}))


def answers(run_id: str):
    url = f"http://bot.example:7071/api/surveys/{run_id}/answers"
    return SurveysFunction.main(http_request("GET", url, route_params={"runId": run_id}))


def rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.get_body().decode("utf-8"))))


def broadcast(app_env, notification_id: str, **extra) -> dict:
    assert call("POST", {"id": notification_id, "to": "all", "text": "hello", **extra}).status_code == 202
    drain(app_env, lambda: status(notification_id)["state"] == "done")
    return status(notification_id)


def test_the_report_has_one_row_per_recipient_with_state_user_locale_and_acknowledgement(app_env, connector):
    seed(connector, {"c-1": "en-US", "c-2": "fr-FR", "c-3": "de-DE"})
    connector.fail_next("c-3", Fault(403, "ConversationBlockedByUser"))
    broadcast(app_env, "weekly", ack={"title": "Got it"})
    click = message(connector.url, "", conversation_id="c-2") | {"value": {"verb": "ack", "notification": "weekly"}}
    MessagesFunction.main(http_request("POST", "http://localhost/api/messages", click))

    response = report("weekly")

    assert response.status_code == 200
    assert response.mimetype == "text/csv" and response.charset == "utf-8"
    assert 'filename="weekly.csv"' in response.headers["Content-Disposition"]
    assert response.get_body().decode().splitlines()[0] == (
        "channel,conversation,user id,user name,locale,state,code,sent at,activity id,acknowledged at,reaction,"
        "aad object id,read at")
    by_conversation = {row["conversation"]: row for row in rows(response)}
    assert set(by_conversation) == {"c-1", "c-2", "c-3"}
    assert {k: by_conversation["c-2"][k] for k in ("channel", "user id", "user name", "locale", "state")} == {
        "channel": "test", "user id": "user-c-2", "user name": "User", "locale": "fr-FR", "state": "sent"}
    assert by_conversation["c-2"]["acknowledged at"] and not by_conversation["c-1"]["acknowledged at"]
    assert by_conversation["c-1"]["sent at"]
    assert (by_conversation["c-3"]["state"], by_conversation["c-3"]["sent at"]) == ("gone", "")
    assert [by_conversation[c]["activity id"] for c in ("c-1", "c-2", "c-3")] == [
        connector.activities("c-1")[0]["id"], connector.activities("c-2")[0]["id"], ""]


def test_the_report_reads_every_page_of_the_ledger(app_env, connector):
    app_env.set(BroadcastPageSize="3")
    seed(connector, {f"c-{i:02d}": "en-US" for i in range(10)})
    assert broadcast(app_env, "paged")["pages"] >= 4

    assert sorted(row["conversation"] for row in rows(report("paged"))) == [f"c-{i:02d}" for i in range(10)]


def test_the_report_leaves_out_a_notification_whose_encoded_id_starts_the_same(app_env, connector):
    assert encode_key("abcd").startswith(encode_key("abc"))
    seed(connector, {"c-1": "en-US", "c-2": "en-US"})
    broadcast(app_env, "abc")
    broadcast(app_env, "abcd")

    assert len(rows(report("abc"))) == 2


def test_the_report_shows_a_reaction_once_the_ledger_keeps_the_activity_id(app_env, connector):
    seed(connector, {"c-1": "en-US"})
    broadcast(app_env, "reacted")
    [sent] = connector.activities("c-1")
    ledger = services.get().table_service.get_table_client(services.get().settings.deliveries_table)
    [entry] = list(ledger.list_entities())
    ledger.update_entity({"PartitionKey": entry["PartitionKey"], "RowKey": entry["RowKey"], "ActivityId": sent["id"]})
    reaction = message(connector.url, "", conversation_id="c-1") | {
        "type": "messageReaction", "replyToId": sent["id"], "reactionsAdded": [{"type": "heart"}]}
    MessagesFunction.main(http_request("POST", "http://localhost/api/messages", reaction))

    [row] = rows(report("reacted"))

    assert (row["activity id"], row["reaction"]) == (sent["id"], "heart")


def test_the_report_shows_when_a_recipient_read_the_message(app_env, connector):
    seed(connector, {"c-1": "en-US"})
    sent = call("POST", {"id": "read-1", "text": "hello", "to": {"conversation": "c-1"}})
    receipt = read_receipt(connector, "c-1", {"lastReadMessageId": json.loads(sent.get_body())["id"]})
    MessagesFunction.main(http_request("POST", "http://localhost/api/messages", receipt))

    [row] = rows(report("read-1"))

    assert row["conversation"] == "c-1"
    assert datetime.fromisoformat(row["read at"]).tzinfo is not None


def test_a_user_name_that_a_spreadsheet_would_run_is_written_as_text(app_env, connector):
    services.get().addresses.save(ConversationReference(
        "test", connector.url, ConversationAccount("c-1"), ChannelAccount("u-1", '=HYPERLINK("http://x")'),
        ChannelAccount("bot-1")), trusted=False)
    broadcast(app_env, "names")

    [row] = rows(report("names"))

    assert row["user name"] == "'=HYPERLINK(\"http://x\")"


def test_the_report_of_an_unknown_notification_is_a_404_json_error(app_env, connector):
    response = report("nobody-sent-this")

    assert response.status_code == 404
    assert json.loads(response.get_body())["error"]["code"] == "not_found"


def test_an_unknown_action_on_a_notification_is_a_400_json_error(app_env, connector):
    from NotifyFunction import main

    response = main(http_request("GET", "http://bot.example:7071/api/notify/x/export",
                                 route_params={"id": "x", "action": "export"}))

    assert response.status_code == 400
    assert json.loads(response.get_body())["error"]["code"] == "bad_request"


def test_survey_answers_are_one_row_per_answer_of_that_run(app_env, connector):
    seed(connector, {"c-1": "en-US", "c-2": "en-US"})
    store = services.get().survey_answers
    at = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    store.record(SurveyAnswer("c-1", "survey-1", 0, "How are you?", "fine", at))
    store.record(SurveyAnswer("c-1", "survey-1", 1, "Better?", "=1+1", at))
    store.record(SurveyAnswer("c-2", "survey-1", 0, "How are you?", "tired, but ok", at))
    store.record(SurveyAnswer("c-2", "survey-2", 0, "How are you?", "other run", at))

    response = answers("survey-1")

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.get_body().decode().splitlines()[0] == (
        "run id,conversation,user id,question index,question,answer,answered at")
    got = sorted((r["conversation"], r["user id"], r["question index"], r["answer"]) for r in rows(response))
    assert got == [("c-1", "user-c-1", "0", "fine"), ("c-1", "user-c-1", "1", "'=1+1"),
                   ("c-2", "user-c-2", "0", "tired, but ok")]
    assert rows(response)[0]["answered at"] == at.isoformat()


def test_survey_answers_of_an_unknown_run_are_a_404_json_error(app_env, connector):
    response = answers("no-such-run")

    assert response.status_code == 404
    assert json.loads(response.get_body())["error"]["code"] == "not_found"
