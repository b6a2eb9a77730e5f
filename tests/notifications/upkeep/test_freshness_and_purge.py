"""Fresh data: serviceUrl changes picked up, idle addresses skipped by broadcasts, the purge takes only the old."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from azure.functions.timer import TimerRequest

import MessagesFunction
import PurgeFunction
from shared_code.app import services
from shared_code.notifications.records.ledger import partition_key
from tests.support.builders import http_request, message
from tests.support.notify_calls import call, drain, seed, status


def post_activity(activity: dict):
    return MessagesFunction.main(http_request("POST", "http://localhost/api/messages", activity))


def ledger_rows(notification_id: str) -> int:
    table = services.get().table_service.get_table_client(services.get().settings.deliveries_table)
    rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": partition_key(notification_id, "000000")})
    return len(list(rows))


def test_a_service_url_change_in_a_new_activity_is_picked_up(app_env, connector):
    post_activity(message("https://old.example/", "hi", conversation_id="c-1"))

    response = post_activity(message(connector.url, "hi again", conversation_id="c-1"))

    assert response.status_code == 200
    assert services.get().addresses.get("c-1").reference.service_url == connector.url
    call("POST", {"to": {"conversation": "c-1"}, "text": "reachable"})
    assert connector.texts("c-1")[-1] == "reachable"


def test_broadcasts_skip_addresses_idle_longer_than_the_max(app_env, connector):
    app_env.set(AddressMaxIdleDays="30")
    now = datetime.now(UTC)
    seed(connector, {"fresh": "en-US"}, now=now - timedelta(days=29))
    seed(connector, {"idle": "en-US"}, now=now - timedelta(days=31))

    call("POST", {"to": "all", "id": "news", "text": "news"})
    drain(app_env, lambda: status("news")["state"] == "done")

    assert (status("news")["total"], connector.texts("fresh"), connector.texts("idle")) == (1, ["news"], [])


def test_purge_removes_exactly_what_is_past_retention(app_env, connector):
    app_env.set(AddressRetentionDays="90", DeliveryRetentionDays="30")
    app, now = services.get(), datetime.now(UTC)
    seed(connector, {"old": "en-US"}, now=now - timedelta(days=91))
    seed(connector, {"recent": "en-US", "c-3": "en-US"}, now=now - timedelta(days=89))
    app.clock = lambda: now - timedelta(days=31)
    call("POST", {"to": "all", "id": "old-done", "text": "a"})
    call("POST", {"to": "all", "id": "old-scheduled", "text": "b", "notBefore": (now + timedelta(days=1)).isoformat()})
    drain(app_env, lambda: status("old-done")["state"] == "done")
    app.clock = lambda: now - timedelta(days=29)
    call("POST", {"to": "all", "id": "recent-done", "text": "c"})
    drain(app_env, lambda: status("recent-done")["state"] == "done")
    app.clock = lambda: now

    PurgeFunction.main(TimerRequest(past_due=False))

    assert [app.addresses.get(cid) is not None for cid in ("old", "recent", "c-3")] == [False, True, True]
    assert [call("GET", notification_id=n).status_code for n in ("old-done", "old-scheduled", "recent-done")] == [
        404, 200, 200]
    assert (ledger_rows("old-done"), ledger_rows("recent-done")) == (0, 3)


def answered_31_and_29_days_ago(app_env, connector, ids: tuple[str, str], body: dict, answer) -> None:
    """Two notifications to c-1, sent 31 and 29 days ago (DeliveryRetentionDays: 30), each answered at
    once by the activity `answer(notification id)` (a click, a reaction); then the clock is today's."""
    app_env.set(DeliveryRetentionDays="30")
    app, now = services.get(), datetime.now(UTC)
    seed(connector, {"c-1": "en-US"}, now=now)
    for notification_id, age in zip(ids, (31, 29), strict=True):
        app.clock = lambda age=age: now - timedelta(days=age)
        call("POST", {"to": "all", "id": notification_id, **body})
        drain(app_env, lambda notification_id=notification_id: status(notification_id)["state"] == "done")
        post_activity(answer(notification_id))
    app.clock = lambda: now


def test_purge_removes_a_finished_notifications_acknowledgements_too(app_env, connector):
    app = services.get()
    answered_31_and_29_days_ago(app_env, connector, ("old-ack", "new-ack"), {"text": "read me", "ack": {}},
                                lambda notification_id: message(connector.url, "", conversation_id="c-1") | {
                                    "value": {"verb": "ack", "notification": notification_id}})
    assert (app.acknowledgements.count("old-ack"), app.acknowledgements.count("new-ack")) == (1, 1)

    PurgeFunction.main(TimerRequest(past_due=False))

    assert (app.acknowledgements.count("old-ack"), app.acknowledgements.count("new-ack")) == (0, 1)


def reaction_rows() -> dict[str, int]:
    """Reaction rows by kind: kept for a notification (`q.`) and by conversation (`r.`)."""
    table = services.get().table_service.get_table_client(services.get().settings.acknowledgements_table)
    kinds = {"q.": 0, "r.": 0}
    for row in table.list_entities(select=["PartitionKey"]):
        kinds[row["PartitionKey"][:2]] = kinds.get(row["PartitionKey"][:2], 0) + 1
    return kinds


def test_purge_removes_the_reactions_to_a_purged_notification(app_env, connector):
    from tests.support.builders import reaction

    answered_31_and_29_days_ago(app_env, connector, ("old-like", "new-like"), {"text": "like me"},
                                lambda _: reaction(connector, "c-1", connector.activities("c-1")[-1]["id"]))
    assert reaction_rows() == {"q.": 2, "r.": 2}

    PurgeFunction.main(TimerRequest(past_due=False))

    assert reaction_rows() == {"q.": 1, "r.": 1}
    assert (status("new-like")["reactions"], call("GET", notification_id="old-like").status_code) == (1, 404)
