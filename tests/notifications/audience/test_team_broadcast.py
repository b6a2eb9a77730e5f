"""A broadcast to every member of a Teams team: the roster read page by page, each member reached once in
their personal chat (the saved one, or one created with the team's tenant), on Azurite and the connector stub."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from azure.functions.timer import TimerRequest

import MessagesFunction
import NotifyQueueFunction
import ScheduledNotificationsFunction
from shared_code.app import services
from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference
from stubs.connector import Fault, create_fault_key
from tests.support.broadcasts import HostDied, queue_main_with_page_hook
from tests.support.builders import http_request, queue_message
from tests.support.notify_calls import body, call, drain, driver
from tests.support.teams import TEAM_ID, TENANT, THREAD_ID, payload

FAST = {"RetryDelayScale": "0.25", "SendConcurrency": "16", "SendRatePerSecond": "2000", "TenantSendRatePerSecond": "2000"}


def post(name: str, connector) -> None:
    response = MessagesFunction.main(http_request("POST", "http://localhost/api/messages", payload(name, connector.url)))
    assert response.status_code == 200


def install(connector, members: list[str]) -> list[str]:
    """The bot added to the team, as Teams tells it, and the team's roster as pagedmembers lists it."""
    post("bot_added_to_team", connector)
    connector.add_team(TEAM_ID, members, tenant_id=TENANT)
    return members


def save_personal_chat(connector, member_id: str, conversation_id: str) -> None:
    """A member who wrote to the bot before: their 1:1 is saved."""
    services.get().addresses.save(ConversationReference(
        channel_id="msteams", service_url=connector.url,
        conversation=ConversationAccount(conversation_id, conversation_type="personal", tenant_id=TENANT),
        user=ChannelAccount(member_id, "Saved"), bot=ChannelAccount("28:bot", "Bot"), tenant_id=TENANT,
    ), trusted=False)


def broadcast(app_env, notification_id: str, text: str) -> dict:
    response = call("POST", {"to": {"team": TEAM_ID}, "text": text, "id": notification_id})
    assert response.status_code == 202, body(response)
    drain(app_env, lambda: body(call("GET", notification_id=notification_id)).get("state") == "done", timeout=120)
    return body(call("GET", notification_id=notification_id))


def received(connector, text: str) -> Counter:
    """How often each user got `text`, across every conversation but the team's channel."""
    return Counter(activity["recipient"]["id"]
                   for conversation, activities in connector.all_activities().items() if conversation != TEAM_ID
                   for activity in activities if activity.get("text") == text)


def conversation_of(member_id: str) -> str:
    [address] = [a for a in services.get().addresses.find_by_user(member_id) if a.scope == "personal"]
    return address.conversation_id


@pytest.fixture
def team_of_300(app_env, connector):
    app_env.set(**{**FAST, "BroadcastPageSize": "100"})
    members = install(connector, [f"29:member-{i:04d}" for i in range(300)])
    saved = {members[0]: "a:saved-0", members[150]: "a:saved-150", members[299]: "a:saved-299"}
    for member_id, conversation_id in saved.items():
        save_personal_chat(connector, member_id, conversation_id)
    return members, saved


@pytest.mark.slow
def test_team_broadcast_reaches_each_of_300_members_once_creating_297_chats_with_the_tenant(team_of_300, app_env,
                                                                                           connector):
    members, saved = team_of_300

    got = broadcast(app_env, "team-1", "All hands at 3")

    assert received(connector, "All hands at 3") == Counter(dict.fromkeys(members, 1))
    assert {cid: connector.texts(cid) for cid in saved.values()} == dict.fromkeys(saved.values(), ["All hands at 3"])
    requests = connector.conversation_requests
    assert connector.conversations_created == 297 and len(requests) == 297
    assert all(r["channelData"]["tenant"]["id"] == TENANT and r["isGroup"] is False for r in requests)
    assert sorted(r["members"][0]["id"] for r in requests) == sorted(set(members) - set(saved))
    assert len(connector.roster_pages_served) > 1 and sum(connector.roster_pages_served) == 300
    assert (got["total"], got["sent"], got["failed"], got["pending"]) == (300, 300, 0, 0)


def test_second_broadcast_to_the_same_team_creates_no_conversation(app_env, connector):
    app_env.set(**{**FAST, "BroadcastPageSize": "25"})  # three pages of a roster of 60
    members = install(connector, [f"29:member-{i:03d}" for i in range(60)])
    save_personal_chat(connector, members[30], "a:saved-30")
    broadcast(app_env, "team-1", "first")
    requests_before = len(connector.conversation_requests)

    got = broadcast(app_env, "team-2", "second")

    assert received(connector, "second") == Counter(dict.fromkeys(members, 1))
    assert len(connector.conversation_requests) == requests_before and connector.conversations_created == 59
    assert (got["total"], got["sent"]) == (60, 60)


def test_member_who_left_the_team_is_not_messaged_by_the_next_broadcast(app_env, connector):
    app_env.set(**{**FAST, "BroadcastPageSize": "25"})  # three pages of a roster of 60
    members = install(connector, [f"29:member-{i:03d}" for i in range(60)])
    broadcast(app_env, "team-1", "first")
    leaver = members[35]
    connector.remove_member(TEAM_ID, leaver)

    got = broadcast(app_env, "team-2", "second")

    assert received(connector, "second") == Counter(dict.fromkeys(set(members) - {leaver}, 1))
    assert connector.texts(conversation_of(leaver)) == ["first"]
    assert (got["total"], got["sent"]) == (59, 59)


def test_member_listed_on_two_roster_pages_gets_one_message(app_env, connector):
    app_env.set(**{**FAST, "BroadcastPageSize": "50"})
    # The roster changed while it was read: member 10 is listed again on the second page.
    members = [f"29:member-{i:03d}" for i in range(100)]
    install(connector, members[:70] + [members[10]] + members[70:])

    got = broadcast(app_env, "team-1", "once each")

    assert connector.roster_pages_served == [50, 50, 1]
    assert received(connector, "once each") == Counter(dict.fromkeys(members, 1))
    assert connector.conversations_created == 100
    assert (got["total"], got["sent"], got["pages"]) == (100, 100, 3)


def test_team_broadcast_to_an_uninstalled_team_is_410_and_every_thread_address_is_inactive(app_env, connector):
    install(connector, [f"29:member-{i}" for i in range(60)])
    post("thread_reply", connector)
    post("installation_remove", connector)
    connector.uninstall_team(TEAM_ID)
    before = connector.total_delivered()

    response = call("POST", {"to": {"team": TEAM_ID}, "text": "anyone?", "id": "team-gone"})

    assert (response.status_code, body(response)["error"]["code"]) == (410, "team_uninstalled")
    assert services.get().notifications.get("team-gone") is None
    team_addresses = [services.get().addresses.get(cid, "msteams") for cid in (TEAM_ID, THREAD_ID)]
    assert [a is not None and not a.active for a in team_addresses] == [True, True]
    assert connector.total_delivered() == before and connector.conversations_created == 0


def test_team_job_on_the_queue_for_an_uninstalled_team_goes_to_poison_with_the_reason(app_env, connector):
    install(connector, [f"29:member-{i}" for i in range(60)])
    post("installation_remove", connector)

    NotifyQueueFunction.main(queue_message({"v": 1, "id": "team-q", "to": {"team": TEAM_ID}, "text": "hi"}))

    [record] = [json.loads(text) for text in driver(app_env).poisoned()]
    assert record["reason"].startswith("team_uninstalled:")
    assert connector.conversations_created == 0


def test_team_job_on_the_queue_reaches_every_member_once(app_env, connector):
    app_env.set(**{**FAST, "BroadcastPageSize": "50"})
    members = install(connector, [f"29:member-{i:03d}" for i in range(75)])

    NotifyQueueFunction.main(queue_message({"v": 1, "id": "team-q", "to": {"team": TEAM_ID}, "text": "queued"}))
    NotifyQueueFunction.main(queue_message({"v": 1, "id": "team-q", "to": {"team": TEAM_ID}, "text": "queued"}))
    drain(app_env, lambda: body(call("GET", notification_id="team-q")).get("state") == "done")

    assert received(connector, "queued") == Counter(dict.fromkeys(members, 1))
    assert driver(app_env).poisoned() == []


def test_creating_a_members_chat_throttled_or_unavailable_is_retried_and_the_member_messaged_once(app_env, connector):
    app_env.set(**{**FAST, "BroadcastPageSize": "50"})
    members = install(connector, [f"29:member-{i:03d}" for i in range(60)])
    connector.fail_next(create_fault_key(members[3]), Fault(429, "Throttled", retry_after=0.2))
    connector.fail_next(create_fault_key(members[4]), Fault(503, "ServiceUnavailable"))

    got = broadcast(app_env, "team-1", "despite faults")

    assert received(connector, "despite faults") == Counter(dict.fromkeys(members, 1))
    assert connector.conversations_created == 60
    assert (got["total"], got["sent"], got["failed"]) == (60, 60, 0)
    ledger = services.get().ledger.page("team-1", "000000")
    attempts = {d.key.conversation_id: d.attempts for d in ledger.values()}
    assert (attempts[members[3]], attempts[members[4]], attempts[members[5]]) == (1, 2, 1)


def test_team_broadcast_stops_with_the_reason_when_the_team_is_uninstalled_during_the_scan(app_env, connector):
    app_env.set(**{**FAST, "BroadcastPageSize": "50"})
    install(connector, [f"29:member-{i:03d}" for i in range(120)])
    response = call("POST", {"to": {"team": TEAM_ID}, "text": "late", "id": "team-1"})
    assert response.status_code == 202
    connector.uninstall_team(TEAM_ID)

    host = drain(app_env, lambda: body(call("GET", notification_id="team-1")).get("state") == "stopped")

    got = body(call("GET", notification_id="team-1"))
    assert got["stopReason"].startswith("team_uninstalled:")
    assert connector.conversations_created == 0
    assert [json.loads(text)["reason"].split(":")[0] for text in host.poisoned()] == ["team_uninstalled"]


def test_team_page_job_lost_from_the_queue_is_reissued_by_the_sweep_and_each_member_messaged_once(app_env, connector):
    app_env.set(**{**FAST, "StalledAfterSeconds": "0", "BroadcastPageSize": "50"})
    members = install(connector, [f"29:member-{i:03d}" for i in range(120)])
    assert call("POST", {"to": {"team": TEAM_ID}, "text": "swept", "id": "team-1"}).status_code == 202
    lost: list[str] = []

    def main(msg) -> None:  # the first job of page 000001 vanishes
        data = json.loads(msg.get_body())
        if data.get("kind") == "page" and data.get("page") == "000001" and not lost:
            lost.append(data["page"])
            return
        NotifyQueueFunction.main(msg)

    host = driver(app_env, main=main)
    while host.step():
        pass
    assert lost and body(call("GET", notification_id="team-1"))["pending"] == 50

    ScheduledNotificationsFunction.main(TimerRequest(past_due=False))
    drain(app_env, lambda: body(call("GET", notification_id="team-1")).get("state") == "done")

    assert received(connector, "swept") == Counter(dict.fromkeys(members, 1))
    assert connector.conversations_created == 120


def test_team_dry_run_counts_the_roster_and_creates_no_conversation(app_env, connector):
    install(connector, [f"29:member-{i:03d}" for i in range(120)])

    response = call("POST", {"to": {"team": TEAM_ID}, "text": "preview", "dryRun": True})

    got = body(response)
    assert (response.status_code, got["recipients"], len(got["sample"])) == (200, 120, 5)
    assert connector.conversations_created == 0 and connector.total_delivered() == 1  # the channel's greeting


@pytest.mark.slow
def test_team_page_job_whose_host_dies_mid_page_messages_nobody_twice_and_creates_each_chat_once(app_env, connector):
    app_env.set(**{**FAST, "SendConcurrency": "4", "BroadcastPageSize": "50", "DeliveryLeaseSeconds": "2"})
    members = install(connector, [f"29:member-{i:03d}" for i in range(50)])
    sends = {"count": 0}

    def die_after_k(key) -> None:
        sends["count"] += 1
        if sends["count"] == 15:
            raise HostDied()

    main = queue_main_with_page_hook(die_after_k)  # the queue function, dying in the page sender

    assert call("POST", {"to": {"team": TEAM_ID}, "text": "once", "id": "team-1"}).status_code == 202
    host = driver(app_env, main=main, visibility=1)
    host.run_until(lambda: body(call("GET", notification_id="team-1")).get("state") == "done", timeout=60)

    assert any(isinstance(f, HostDied) for f in host.failures)
    assert received(connector, "once") == Counter(dict.fromkeys(members, 1))
    assert connector.conversations_created == 50 and len(connector.conversation_requests) == 50
    got = body(call("GET", notification_id="team-1"))
    assert got["sent"] + got["failed"] == 50 and 1 <= got["failed"] <= 4
    assert {e["code"] for e in got["errors"]} == {"outcome_unknown"}
