"""POST /api/notify with "dryRun": true: how many it would reach and a sample, with nothing sent or stored."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared_code.app import services
from tests.support.notify_calls import body, call, queued, seed


def test_dry_run_counts_every_active_address_and_samples_five(app_env, connector):
    seed(connector, {f"c-{i:02d}": "en-US" for i in range(12)})
    services.get().addresses.deactivate("test", "c-03", "blocked")

    response = call("POST", {"id": "preview-1", "to": "all", "text": "hi", "dryRun": True})

    assert response.status_code == 200
    answer = body(response)
    assert (answer["dryRun"], answer["recipients"], answer["to"]) == (True, 11, "all")
    assert len(answer["sample"]) == 5
    assert {"channel", "conversation", "user", "userName", "locale"} == set(answer["sample"][0])
    assert "c-03" not in {s["conversation"] for s in answer["sample"]}


def test_dry_run_sends_and_stores_nothing(app_env, connector):
    seed(connector, {f"c-{i}": "en-US" for i in range(3)})

    call("POST", {"id": "preview-2", "to": "all", "text": "hi", "dryRun": True})
    call("POST", {"id": "preview-3", "to": {"conversation": "c-1"}, "text": "hi", "dryRun": True})

    assert connector.all_activities() == {}
    assert services.get().notifications.get("preview-2") is None
    assert services.get().notifications.get("preview-3") is None
    assert queued() == []
    table = services.get().table_service.get_table_client(services.get().settings.deliveries_table)
    assert [t.name for t in services.get().table_service.query_tables("TableName eq @n", parameters={"n": table.table_name})] == []


def test_dry_run_counts_across_pages_of_the_address_table(app_env, connector, monkeypatch):
    from shared_code.notifications.audience import preview as audience

    monkeypatch.setattr(audience, "COUNT_PAGE_SIZE", 4)
    seed(connector, {f"c-{i:02d}": "en-US" for i in range(10)})

    answer = body(call("POST", {"to": "all", "text": "hi", "dryRun": True}))

    assert answer["recipients"] == 10


def test_dry_run_for_a_channel_counts_only_that_channel(app_env, connector):
    from tests.support.builders import reference

    store = services.get().addresses
    for i in range(3):
        store.save(reference(connector.url, f"teams-{i}", channel_id="msteams"), trusted=False)
    store.save(reference(connector.url, "web-1", channel_id="webchat"), trusted=False)

    answer = body(call("POST", {"to": {"channel": "msteams"}, "text": "hi", "dryRun": True}))

    assert answer["recipients"] == 3


def test_dry_run_skips_addresses_unseen_for_the_idle_limit(app_env, connector):
    app_env.set(AddressMaxIdleDays="30")
    now = services.get().clock()
    seed(connector, {"fresh": "en-US"}, now=now)
    seed(connector, {"stale": "en-US"}, now=now - timedelta(days=45))

    answer = body(call("POST", {"to": "all", "text": "hi", "dryRun": True}))

    assert (answer["recipients"], [s["conversation"] for s in answer["sample"]]) == (1, ["fresh"])


def test_dry_run_for_an_unknown_conversation_is_a_404(app_env, connector):
    response = call("POST", {"to": {"conversation": "nobody"}, "text": "hi", "dryRun": True})

    assert response.status_code == 404
    assert body(response)["error"]["code"] == "not_found"


@pytest.mark.parametrize("bad", [{"dryRun": "yes"}, {"dryRun": True, "text": ""}, {"dryRun": True, "ack": 1}])
def test_dry_run_with_bad_input_is_a_400(app_env, connector, bad):
    seed(connector, {"c-1": "en-US"})

    response = call("POST", {"to": "all", "text": "hi", **bad})

    assert response.status_code == 400
    assert body(response)["error"]["code"] == "bad_request"
