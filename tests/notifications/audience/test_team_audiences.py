"""Teams audiences over HTTP and the queue: a team's channel, a team, channelId and its alias."""

from __future__ import annotations

import json

import MessagesFunction
import NotifyQueueFunction
from shared_code.app import services
from shared_code.conversation.turn import GROUP_WELCOME
from tests.support.builders import http_request, queue_message, reference
from tests.support.notify_calls import body, call, drain, queued
from tests.support.queue_driver import QueueDriver
from tests.support.teams import TEAM_ID, payload


def install(connector) -> None:
    for name in ("bot_added_to_team", "channel_message_with_mention"):
        response = MessagesFunction.main(http_request("POST", "http://localhost/api/messages", payload(name, connector.url)))
        assert response.status_code == 200


def uninstall(connector) -> None:
    MessagesFunction.main(http_request("POST", "http://localhost/api/messages", payload("installation_remove", connector.url)))


def poisoned(app_env) -> list[dict]:
    driver = QueueDriver(app_env.values["AzureWebJobsStorage"], app_env.values["JobsQueueName"])
    return [json.loads(text) for text in driver.poisoned()]


def test_team_channel_message_is_posted_once_in_the_teams_root_channel(app_env, connector):
    install(connector)

    response = call("POST", {"to": {"teamChannel": TEAM_ID}, "text": "Release 42 is out"})

    assert response.status_code == 200
    assert body(response)["conversation"] == TEAM_ID
    assert connector.texts(TEAM_ID) == [GROUP_WELCOME, "Release 42 is out"]
    assert connector.activities(TEAM_ID)[-1]["conversation"]["conversationType"] == "channel"


def test_team_channel_of_an_unknown_team_is_404(app_env, connector):
    response = call("POST", {"to": {"teamChannel": "19:nobody@thread.tacv2"}, "text": "hi"})

    assert (response.status_code, body(response)["error"]["code"]) == (404, "not_found")
    assert connector.all_activities() == {}


def test_team_channel_of_an_uninstalled_team_is_410(app_env, connector):
    install(connector)
    uninstall(connector)
    before = connector.total_delivered()

    response = call("POST", {"to": {"teamChannel": TEAM_ID}, "text": "hi"})

    assert (response.status_code, body(response)["error"]["code"]) == (410, "team_uninstalled")
    assert connector.total_delivered() == before


def test_team_channel_saved_without_its_address_gets_one_from_the_team(app_env, connector):
    MessagesFunction.main(http_request("POST", "http://localhost/api/messages", payload("team_renamed", connector.url)))

    response = call("POST", {"to": {"teamChannel": TEAM_ID}, "text": "hello Sales"})

    assert response.status_code == 200
    assert connector.texts(TEAM_ID) == ["hello Sales"]


def test_team_audience_is_accepted_with_202_and_its_first_scan_queued(app_env, connector):
    install(connector)

    response = call("POST", {"to": {"team": TEAM_ID}, "text": "everyone", "id": "team-1"})

    assert response.status_code == 202 and body(response)["created"] is True
    assert len(queued()) == 1 and services.get().notifications.get("team-1").job.target.to_json() == {"team": TEAM_ID}


def test_team_audience_of_an_unknown_team_is_404_and_nothing_is_queued(app_env, connector):
    response = call("POST", {"to": {"team": "19:nobody@thread.tacv2"}, "text": "everyone", "id": "team-1"})

    assert (response.status_code, body(response)["error"]["code"]) == (404, "not_found")
    assert queued() == [] and services.get().notifications.get("team-1") is None


def test_team_channel_job_on_the_queue_is_delivered_once_through_the_ledger(app_env, connector):
    install(connector)

    NotifyQueueFunction.main(queue_message({"v": 1, "id": "tc-1", "to": {"teamChannel": TEAM_ID}, "text": "from the queue"}))
    NotifyQueueFunction.main(queue_message({"v": 1, "id": "tc-1", "to": {"teamChannel": TEAM_ID}, "text": "from the queue"}))
    drain(app_env, lambda: body(call("GET", notification_id="tc-1")).get("state") == "done")

    assert connector.texts(TEAM_ID).count("from the queue") == 1
    assert poisoned(app_env) == []


def test_team_channel_job_of_an_uninstalled_team_goes_to_poison(app_env, connector):
    install(connector)
    uninstall(connector)

    NotifyQueueFunction.main(queue_message({"v": 1, "to": {"teamChannel": TEAM_ID}, "text": "hi"}))

    [record] = poisoned(app_env)
    assert record["reason"].startswith("team_uninstalled:")


def test_channel_id_reaches_every_address_of_that_bot_framework_channel(app_env, connector):
    services.get().addresses.save_many(
        [reference(connector.url, f"t-{i}", channel_id="msteams") for i in range(3)]
        + [reference(connector.url, "w-1", channel_id="webchat")], trusted=False)

    response = call("POST", {"to": {"channelId": "msteams"}, "text": "teams only", "id": "cid-1"})
    drain(app_env, lambda: body(call("GET", notification_id="cid-1")).get("state") == "done")

    assert response.status_code == 202
    assert [connector.texts(f"t-{i}") for i in range(3)] == [["teams only"]] * 3
    assert connector.texts("w-1") == []


def test_channel_and_channel_id_name_the_same_audience(app_env, connector):
    services.get().addresses.save_many([reference(connector.url, "t-1", channel_id="msteams")], trusted=False)

    first = call("POST", {"to": {"channel": "msteams"}, "text": "same", "id": "alias-1"})
    second = call("POST", {"to": {"channelId": "msteams"}, "text": "same", "id": "alias-1"})

    assert (first.status_code, second.status_code) == (202, 202)
    assert (body(first)["created"], body(second)["created"]) == (True, False)
