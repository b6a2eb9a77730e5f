"""Edit and recall of a sent notification: every delivered message updated in place, then deleted, each once."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from azure.data.tables import UpdateMode

import NotifyFunction
from shared_code.app import services
from shared_code.notifications.records.ledger import partition_key
from tests.support.builders import http_request, reference
from tests.support.queue_driver import QueueDriver

FAST = {"RetryDelayScale": "0", "SendConcurrency": "16", "SendRatePerSecond": "5000",
        "TenantSendRatePerSecond": "5000"}


def call(method: str, notification_id: str = "", action: str = "", body: object = None):
    url = "http://bot.example:7071/api/notify" + "".join(f"/{p}" for p in (notification_id, action) if p)
    route = {k: v for k, v in (("id", notification_id), ("action", action)) if v}
    return NotifyFunction.main(http_request(method, url, body, route_params=route))


def status(notification_id: str) -> dict:
    return json.loads(call("GET", notification_id).get_body())


def seed(connector, count: int) -> list[str]:
    ids = [f"c-{i:03d}" for i in range(count)]
    services.get().addresses.save_many([reference(connector.url, cid) for cid in ids], trusted=False)
    return ids


def driver(app_env) -> QueueDriver:
    return QueueDriver(app_env.values["AzureWebJobsStorage"], app_env.values["JobsQueueName"])


def drain(app_env, done) -> None:
    driver(app_env).run_until(done, timeout=120)


@pytest.mark.slow
def test_a_broadcast_to_120_in_three_pages_edited_then_recalled_updates_then_deletes_every_message_exactly_once(app_env, connector):
    app_env.set(**FAST, BroadcastPageSize="40")
    ids = seed(connector, 120)
    call("POST", body={"id": "wrong", "text": "Version 41 is out", "to": "all"})
    drain(app_env, lambda: status("wrong")["state"] == "done")
    sent = {cid: connector.activities(cid)[0]["id"] for cid in ids}

    edited = call("PATCH", "wrong", body={"text": "Version 42 is out"})
    drain(app_env, lambda: status("wrong")["updated"] == 120)
    recalled = call("POST", "wrong", "recall")
    drain(app_env, lambda: status("wrong")["recalled"] == 120)

    assert (edited.status_code, recalled.status_code) == (202, 202)
    puts = Counter((cid, aid) for cid, aid, _ in connector.updated)
    assert puts == Counter(sent.items())
    assert {body["text"] for _, _, body in connector.updated} == {"Version 42 is out"}
    assert Counter(connector.deleted) == Counter(sent.items())
    final = status("wrong")
    assert (final["updated"], final["recalled"]) == (len(connector.updated), len(connector.deleted))
    assert (final["editFailed"], final["recallFailed"], final["notEditable"]) == (0, 0, 0)
    assert connector.total_delivered() == 0


def test_an_edit_while_the_broadcast_runs_reaches_later_recipients_and_updates_earlier_ones_once(app_env, connector):
    app_env.set(**FAST, BroadcastPageSize="10")
    ids = seed(connector, 40)
    call("POST", body={"id": "running", "text": "old", "to": "all"})
    host = driver(app_env)
    host.run_until(lambda: 0 < status("running")["sent"] < 40)  # a page or more out, not all
    earlier = {cid for cid in ids if connector.activities(cid)}

    assert call("PATCH", "running", body={"text": "new"}).status_code == 202
    host.run_until(lambda: status("running")["state"] == "done" and status("running")["updated"] == len(earlier))

    assert 0 < len(earlier) < 40
    assert all(len(connector.activities(cid)) == 1 for cid in ids)  # nobody got two messages
    assert all(connector.texts(cid) == ["new"] for cid in ids)
    assert sorted(cid for cid, _, _ in connector.updated) == sorted(earlier)


def test_an_edit_keeps_the_acknowledge_button(app_env, connector):
    app_env.set(**FAST)
    [cid] = seed(connector, 1)
    call("POST", body={"id": "acked", "text": "old", "to": "all", "ack": {"title": "Got it"}})
    drain(app_env, lambda: status("acked")["state"] == "done")

    call("PATCH", "acked", body={"text": "new"})
    drain(app_env, lambda: status("acked")["updated"] == 1)

    [(_, _, activity)] = connector.updated
    assert "Got it" in json.dumps(activity["attachments"])


def test_a_recipient_sent_without_an_activity_id_is_reported_not_editable(app_env, connector):
    app_env.set(**FAST)
    [cid] = seed(connector, 1)
    call("POST", body={"id": "split", "text": "old", "to": "all"})
    drain(app_env, lambda: status("split")["state"] == "done")
    ledger = services.get().ledger
    [(page, record)] = [(p.page, r) for p in services.get().notifications.pages("split")[0]
                        for r in ledger.page("split", p.page).values()]
    # As Teams leaves it when it splits text and attachments in two: sent, with no id to edit.
    ledger.table.update_entity({"PartitionKey": partition_key("split", page), "RowKey": record.key.row_key,
                                "ActivityId": ""}, mode=UpdateMode.MERGE)

    call("PATCH", "split", body={"text": "new"})
    drain(app_env, lambda: status("split")["notEditable"] == 1)

    assert connector.updated == [] and status("split")["updated"] == 0


def test_editing_an_unknown_notification_is_a_404(app_env, connector):
    response = call("PATCH", "nobody", body={"text": "new"})

    assert response.status_code == 404
    assert json.loads(response.get_body())["error"]["code"] == "not_found"


def test_recalling_an_unknown_notification_is_a_404(app_env, connector):
    response = call("POST", "nobody", "recall")

    assert response.status_code == 404
    assert json.loads(response.get_body())["error"]["code"] == "not_found"


def test_editing_a_recalled_notification_is_a_409_and_changes_nothing(app_env, connector):
    app_env.set(**FAST)
    seed(connector, 2)
    call("POST", body={"id": "gone", "text": "old", "to": "all"})
    drain(app_env, lambda: status("gone")["state"] == "done")
    call("POST", "gone", "recall")
    before = status("gone")

    response = call("PATCH", "gone", body={"text": "new"})

    assert response.status_code == 409
    assert json.loads(response.get_body())["error"]["code"] == "conflict"
    assert status("gone") == before
    assert services.get().notifications.get("gone").job.text == "old"


def test_an_edit_with_invalid_content_is_a_400_and_changes_nothing(app_env, connector):
    app_env.set(**FAST)
    seed(connector, 1)
    call("POST", body={"id": "kept", "text": "old", "to": "all"})

    answers = [call("PATCH", "kept", body={"text": ""}),
               call("PATCH", "kept", body={"attachments": [{"contentType": 7}]}),
               call("PATCH", "kept", body={"text": "new", "to": {"user": "someone-else"}})]

    assert [a.status_code for a in answers] == [400, 400, 400]
    notification = services.get().notifications.get("kept")
    assert (notification.job.text, notification.version) == ("old", 0)


def test_recall_stops_what_has_not_been_sent(app_env, connector):
    app_env.set(**FAST, BroadcastPageSize="10")
    ids = seed(connector, 30)
    call("POST", body={"id": "halt", "text": "oops", "to": "all"})
    host = driver(app_env)
    host.run_until(lambda: 0 < status("halt")["sent"] < 30)

    call("POST", "halt", "recall")
    host.run_until(lambda: status("halt")["pending"] == 0 and status("halt")["recalled"] == status("halt")["sent"])

    final = status("halt")
    assert final["state"] == "cancelled" and final["cancelled"] > 0
    assert connector.total_delivered() == 0
    assert len(connector.deleted) == final["sent"] and len(set(connector.deleted)) == final["sent"]
    assert all(not connector.activities(cid) for cid in ids)


def test_an_edit_job_from_another_service_updates_every_delivered_message(app_env, connector):
    from shared_code.notifications import jobs

    app_env.set(**FAST)
    ids = seed(connector, 3)
    call("POST", body={"id": "from-queue", "text": "old", "to": "all"})
    drain(app_env, lambda: status("from-queue")["state"] == "done")

    jobs.enqueue({"v": 1, "kind": "edit", "id": "from-queue", "text": {"en": "new"}, "defaultLocale": "en"},
                 services.get())
    drain(app_env, lambda: status("from-queue").get("updated") == 3)

    assert all(connector.texts(cid) == ["new"] for cid in ids)
    assert sorted(cid for cid, _, _ in connector.updated) == ids


def test_an_edit_job_for_an_unknown_notification_is_poisoned_with_the_reason(app_env, connector):
    from shared_code.notifications import jobs

    jobs.enqueue({"v": 1, "kind": "edit", "id": "nobody", "text": "new"}, services.get())
    host = driver(app_env)
    host.run_until(lambda: bool(host.poisoned()))

    [record] = host.poisoned()
    assert "not_found" in json.loads(record)["reason"]


def test_a_single_conversation_send_can_be_edited_and_recalled_by_the_id_it_answered(app_env, connector):
    app_env.set(**FAST)
    [cid] = seed(connector, 1)
    sent = call("POST", body={"text": "old", "to": {"conversation": cid}})
    activity_id = json.loads(sent.get_body())["id"]

    edited = call("PATCH", activity_id, body={"text": "new"})
    drain(app_env, lambda: status(activity_id).get("updated") == 1)
    recalled = call("POST", activity_id, "recall")
    drain(app_env, lambda: status(activity_id)["recalled"] == 1)

    assert (sent.status_code, edited.status_code, recalled.status_code) == (200, 202, 202)
    assert connector.updated == [(cid, activity_id, connector.updated[0][2])]
    assert connector.updated[0][2]["text"] == "new"
    assert connector.deleted == [(cid, activity_id)]


def test_a_single_send_with_a_caller_id_is_kept_under_that_id_and_not_sent_twice(app_env, connector):
    app_env.set(**FAST)
    [cid] = seed(connector, 1)
    request = {"id": "one-off", "text": "hello", "to": {"conversation": cid}}

    first, second = call("POST", body=request), call("POST", body=request)

    assert (first.status_code, second.status_code) == (200, 200)
    assert json.loads(first.get_body()) == json.loads(second.get_body())
    assert len(connector.activities(cid)) == 1
    assert {k: status("one-off")[k] for k in ("state", "total", "sent")} == {"state": "done", "total": 1, "sent": 1}


def test_a_message_the_channel_cannot_update_yet_is_tried_again_by_a_later_job_and_counted_updated(app_env, connector):
    from stubs.connector import Fault

    app_env.set(**FAST)
    ids = seed(connector, 3)
    call("POST", body={"id": "flaky", "text": "old", "to": "all"})
    drain(app_env, lambda: status("flaky")["state"] == "done")
    connector.fail_next("c-001", Fault(502), times=3)  # the connector's own two retries fail too

    call("PATCH", "flaky", body={"text": "new"})
    drain(app_env, lambda: status("flaky")["updated"] == 3)

    assert all(connector.texts(cid) == ["new"] for cid in ids)
    assert Counter(cid for cid, _, _ in connector.updated) == Counter(ids)
    assert status("flaky")["editFailed"] == 0


def test_a_message_the_channel_keeps_failing_to_delete_is_counted_failed_after_send_max_attempts(app_env, connector):
    from stubs.connector import Fault

    app_env.set(**FAST, SendMaxAttempts="2")
    seed(connector, 3)
    call("POST", body={"id": "stuck", "text": "old", "to": "all"})
    drain(app_env, lambda: status("stuck")["state"] == "done")
    connector.fail_next("c-002", Fault(503), times=100)

    call("POST", "stuck", "recall")
    drain(app_env, lambda: status("stuck")["recalled"] + status("stuck")["recallFailed"] == 3)

    assert (status("stuck")["recalled"], status("stuck")["recallFailed"]) == (2, 1)
    assert connector.texts("c-002") == ["old"]
