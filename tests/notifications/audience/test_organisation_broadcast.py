"""Broadcasts to the organisation through Microsoft Graph: an Entra group, a list of people, the tenant.
Each person is reached once in their personal chat with the bot, the app installed for those who never
wrote to it, on Azurite, the Graph stub and the connector stub."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections import Counter

import pytest

from shared_code.app import services
from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference
from stubs.graph import CallKind, Delivery, GraphFault, aad_id
from tests.support.notify_calls import body, call
from tests.support.organisation import broadcast, organisation, received

GROUP = aad_id("all-staff", "group")


def chat_of(graph, user) -> str:
    return graph.chat_id_for(user.id)


def save_personal_chat(connector, graph, user, conversation_id: str) -> None:
    """A person who wrote to the bot before: their personal chat is saved from an authenticated activity."""
    services.get().addresses.save(ConversationReference(
        channel_id="msteams", service_url=connector.url,
        conversation=ConversationAccount(conversation_id, conversation_type="personal", tenant_id=graph.tenant_id),
        user=ChannelAccount(f"29:{user.id}", user.display_name, aad_object_id=user.id),
        bot=ChannelAccount("28:bot", "Bot"), tenant_id=graph.tenant_id), trusted=True)


def test_a_group_reaches_each_user_of_its_nested_groups_once(app_env, connector):
    with organisation(app_env, connector) as graph:
        finance = graph.add_users(30, prefix="finance")
        payroll = graph.add_users(10, prefix="payroll")
        inner = graph.add_group(members=[u.id for u in payroll] + [finance[0].id, graph.add_device()])
        group = graph.add_group(members=[u.id for u in finance] + [inner, graph.add_org_contact()])

        got = broadcast(app_env, {"group": group}, "Quarter closes Friday", "g-1")

        people = finance + payroll
        assert received(connector, "Quarter closes Friday") == Counter({chat_of(graph, u): 1 for u in people})
        assert graph.installs == 40
        assert (got["state"], got["total"], got["sent"], got["failed"], got["pending"]) == ("done", 40, 40, 0, 0)


def test_a_person_with_a_saved_personal_chat_is_sent_there_with_no_graph_call_about_them(app_env, connector):
    with organisation(app_env, connector) as graph:
        [known, new] = graph.add_users(2, prefix="p")
        save_personal_chat(connector, graph, known, "a:known-chat")
        group = graph.add_group(members=[known.id, new.id])

        broadcast(app_env, {"group": group}, "hello", "g-1")

        assert connector.texts("a:known-chat") == ["hello"]
        assert connector.texts(chat_of(graph, new)) == ["hello"]
        assert graph.installs == 1 and graph.installation(known.id) is None


def test_a_second_broadcast_to_the_same_group_makes_no_install_call(app_env, connector):
    with organisation(app_env, connector) as graph:
        graph.add_users(20, prefix="p", group=GROUP)
        broadcast(app_env, {"group": GROUP}, "first", "g-1")
        calls = dict(graph.counters().calls)

        got = broadcast(app_env, {"group": GROUP}, "second", "g-2")

        assert graph.counters().calls[CallKind.INSTALL] == calls[CallKind.INSTALL] == 20
        assert graph.counters().calls[CallKind.INSTALLED_APPS] == calls[CallKind.INSTALLED_APPS] == 40
        assert (got["sent"], sum(received(connector, "second").values())) == (20, 20)


def test_an_app_already_installed_for_a_person_is_not_an_error(app_env, connector):
    with organisation(app_env, connector) as graph:
        [user] = graph.add_users(1, prefix="p")
        graph.install(user.id)  # installed by the person or an admin, no chat saved by the bot
        group = graph.add_group(members=[user.id])

        got = broadcast(app_env, {"group": group}, "hello", "g-1")

        assert connector.texts(chat_of(graph, user)) == ["hello"]
        assert graph.installs == 0 and got["sent"] == 1


def test_people_the_app_cannot_be_installed_for_are_skipped_with_the_code_and_not_retried(app_env, connector):
    with organisation(app_env, connector) as graph:
        [ok] = graph.add_users(1, prefix="ok")
        [blocked] = graph.add_users(1, prefix="blocked", install_blocked=True)
        [unlicensed] = graph.add_users(1, prefix="unlicensed", licensed=False)
        group = graph.add_group(members=[ok.id, blocked.id, unlicensed.id])

        got = broadcast(app_env, {"group": group}, "hello", "g-1")

        assert (got["sent"], got["skipped"]["inactive"], got["failed"], got["pending"]) == (1, 2, 0, 0)
        assert graph.counters().calls[CallKind.INSTALL] == 3
        assert report_codes("g-1") == {ok.id: "", blocked.id: "install_blocked", unlicensed.id: "no_teams_license"}


def report_codes(notification_id: str) -> dict[str, str]:
    """The CSV report's code per person, by object id."""
    from shared_code.notifications.after_send.reports import notification_report

    rows = list(csv.DictReader(io.StringIO(notification_report(notification_id, services.get()).decode())))
    return {row["aad object id"]: row["code"] for row in rows}


def test_graph_throttling_and_outages_delay_people_but_fail_none(app_env, connector):
    with organisation(app_env, connector) as graph:
        graph.add_users(12, prefix="p", group=GROUP)
        graph.fail_next(CallKind.INSTALL, GraphFault(429, "TooManyRequests", retry_after=1), times=4)
        graph.fail_next(CallKind.INSTALLED_APPS, GraphFault(503, "ServiceNotAvailable", retry_after=1), times=3)
        graph.fail_next(CallKind.INSTALLED_APPS, GraphFault(504, "GatewayTimeout"), times=2)

        got = broadcast(app_env, {"group": GROUP}, "hello", "g-1")

        assert (got["sent"], got["failed"]) == (12, 0)
        assert sum(received(connector, "hello").values()) == 12


@pytest.mark.parametrize("delivery", [Delivery.IMMEDIATE, Delivery.HELD])
def test_the_installs_conversation_update_sends_nothing_and_refreshes_the_same_address(app_env, connector, delivery):
    with organisation(app_env, connector, delivery=delivery) as graph:
        users = graph.add_users(5, prefix="p", group=GROUP)

        broadcast(app_env, {"group": GROUP}, "hello", "g-1")
        if delivery is Delivery.HELD:  # Teams' activity arrives after the first message
            assert all(p.delivered for p in graph.release())

        assert len(graph.conversation_updates) == 5
        # One message each, and no greeting: the app installed itself to bring it, nobody added the bot.
        assert {chat_of(graph, u): connector.texts(chat_of(graph, u)) for u in users} == {
            chat_of(graph, u): ["hello"] for u in users}
        for user in users:
            address = services.get().addresses.get(chat_of(graph, user), "msteams")
            assert address.reference.user.aad_object_id == user.id
            assert address.reference.user.id.startswith("29:")  # what Teams' activity said, kept


def test_a_missing_graph_permission_stops_the_broadcast_naming_it(app_env, connector):
    with organisation(app_env, connector) as graph:
        graph.add_users(3, prefix="p", group=GROUP)
        graph.roles_without_token.discard("TeamsAppInstallation.ReadWriteSelfForUser.All")

        got = broadcast(app_env, {"group": GROUP}, "hello", "g-1")

        assert got["state"] == "stopped"
        assert "TeamsAppInstallation.ReadWriteSelfForUser.All" in got["stopReason"]
        assert not received(connector, "hello")


def test_a_tenant_broadcast_reaches_enabled_members_and_guests_only_when_asked(app_env, connector):
    with organisation(app_env, connector) as graph:
        members = graph.add_users(4, prefix="member")
        guests = graph.add_users(2, prefix="guest", user_type="Guest")
        graph.add_users(1, prefix="disabled", account_enabled=False)

        members_only = broadcast(app_env, {"tenant": graph.tenant_id}, "members", "t-1")
        everyone = broadcast(app_env, {"tenant": graph.tenant_id, "includeGuests": True}, "everyone", "t-2")

        assert received(connector, "members") == Counter({chat_of(graph, u): 1 for u in members})
        assert received(connector, "everyone") == Counter({chat_of(graph, u): 1 for u in members + guests})
        assert (members_only["total"], everyone["total"]) == (4, 6)


def test_a_list_of_people_by_id_and_name_reaches_each_once_and_skips_unknown_names(app_env, connector):
    with organisation(app_env, connector) as graph:
        [a, b] = graph.add_users(2, prefix="p")
        people = [a.id, a.user_principal_name.upper(), b.user_principal_name, "nobody@contoso.example"]

        got = broadcast(app_env, {"users": people}, "hello", "u-1")

        assert received(connector, "hello") == Counter({chat_of(graph, a): 1, chat_of(graph, b): 1})
        assert (got["total"], got["sent"], got["skipped"]["inactive"]) == (3, 2, 1)


def test_the_dry_run_counts_people_with_a_chat_to_install_and_unreachable(app_env, connector):
    with organisation(app_env, connector) as graph:
        users = graph.add_users(6, prefix="p", group=GROUP)
        save_personal_chat(connector, graph, users[0], "a:known")
        save_personal_chat(connector, graph, users[1], "a:blocked")
        services.get().addresses.deactivate("msteams", "a:blocked", "ConversationBlockedByUser")

        response = call("POST", {"to": {"group": GROUP}, "text": "hi", "dryRun": True})

        got = body(response)
        assert response.status_code == 200
        assert (got["recipients"], got["withChat"], got["toInstall"]) == (5, 1, 4)
        assert got["unreachable"] == {"ConversationBlockedByUser": 1}
        assert graph.installs == 0 and not received(connector, "hi")


def test_an_organisation_audience_without_a_tenant_is_refused_when_deployed(app_env):
    app_env.set(MicrosoftAppId="test-app-id", MicrosoftAppPassword="x", MicrosoftAppTenantId="")

    response = call("POST", {"to": {"group": GROUP}, "text": "hi"})

    assert response.status_code == 400 and "tenant" in body(response)["error"]["message"]


@pytest.mark.parametrize("to", [{"group": "not-a-guid"}, {"users": []}, {"users": ["x y@z"]},
                                {"group": GROUP, "includeGuests": True}, {"tenant": ""}])
def test_malformed_organisation_audiences_are_400(app_env, to):
    response = call("POST", {"to": to, "text": "hi"})

    assert response.status_code == 400, body(response)


def test_a_host_that_dies_between_install_and_send_resumes_with_no_second_install_and_no_unknown_outcome(
        app_env, connector, monkeypatch):
    from shared_code.protocol.graph import GraphClient
    from tests.support.broadcasts import HostDied
    from tests.support.notify_calls import driver

    with organisation(app_env, connector, SendConcurrency="4", DeliveryLeaseSeconds="2") as graph:
        users = graph.add_users(20, prefix="p", group=GROUP)
        real = GraphClient.installation_id
        looked_up = {"count": 0}

        def dies_on_the_sixth(self, user_id, catalog_id):
            looked_up["count"] += 1
            if looked_up["count"] == 6:
                raise HostDied()  # installed, its step recorded, its chat not yet found
            return real(self, user_id, catalog_id)

        monkeypatch.setattr(GraphClient, "installation_id", dies_on_the_sixth)
        assert call("POST", {"to": {"group": GROUP}, "text": "once", "id": "g-1"}).status_code == 202
        host = driver(app_env, visibility=1)
        host.run_until(lambda: body(call("GET", notification_id="g-1")).get("state") == "done", timeout=60)

        assert any(isinstance(f, HostDied) for f in host.failures)
        assert received(connector, "once") == Counter({chat_of(graph, u): 1 for u in users})
        assert graph.counters().calls[CallKind.INSTALL] == 20 and graph.installs == 20
        got = body(call("GET", notification_id="g-1"))
        assert (got["sent"], got["failed"]) == (20, 0)  # claimed before any send: resumed, not outcome_unknown


def test_a_forged_scan_job_naming_a_graph_page_after_the_last_is_refused(app_env, connector):
    from shared_code.notifications.audience import fanout
    from tests.support.broadcasts import poisoned
    from tests.support.notify_calls import drain

    with organisation(app_env, connector, BroadcastPageSize="5") as graph:
        graph.add_users(12, prefix="p", group=GROUP)
        broadcast(app_env, {"group": GROUP}, "hello", "g-1")
        forged = fanout.ScanJob("g-1", 3, {"graph": "https://attacker.example/v1.0/users?$skiptoken=x"})
        services.get().queue().send_message(base64.b64encode(json.dumps(forged.to_json()).encode()).decode())

        drain(app_env, lambda: bool(poisoned(app_env)))

        assert "does not follow the last frozen page" in poisoned(app_env)[0]["reason"]
        assert sum(received(connector, "hello").values()) == 12


@pytest.mark.slow
def test_a_group_of_60_people_none_of_whom_wrote_reaches_each_once_in_three_pages(app_env, connector):
    # 5,000 in pages of 500 passes the same way (about 4 CPU-minutes on Azurite): the suite keeps three small pages.
    with organisation(app_env, connector, BroadcastPageSize="20") as graph:
        users = graph.add_users(60, prefix="p", group=GROUP)

        # The queue message stays invisible while its page runs, as the Functions host keeps it.
        got = broadcast(app_env, {"group": GROUP}, "Everyone", "g-60", timeout=300, visibility=300)

        assert received(connector, "Everyone") == Counter({chat_of(graph, u): 1 for u in users})
        assert graph.installs == 60 and graph.counters().calls[CallKind.INSTALL] == 60
        assert graph.counters().calls[CallKind.INSTALLED_APPS] == 120  # 3 Graph calls per new person, no more
        assert (got["pages"], got["total"], got["sent"], got["failed"]) == (3, 60, 60, 0)


def test_a_forged_page_job_naming_someone_outside_the_group_installs_nothing_and_sends_nothing(app_env, connector):
    from shared_code.notifications.audience import fanout
    from shared_code.notifications.audience.organisation import person_key
    from tests.support.broadcasts import poisoned
    from tests.support.notify_calls import drain

    with organisation(app_env, connector) as graph:
        graph.add_users(3, prefix="p", group=GROUP)
        [outsider] = graph.add_users(1, prefix="outsider")
        broadcast(app_env, {"group": GROUP}, "hello", "g-1")
        installs = graph.installs
        forged = fanout.PageJob("g-1", "000000", (person_key(outsider.id),))
        services.get().queue().send_message(base64.b64encode(json.dumps(forged.to_json()).encode()).decode())

        drain(app_env, lambda: bool(poisoned(app_env)))

        assert "not in page" in poisoned(app_env)[0]["reason"]
        assert graph.installs == installs and graph.installation(outsider.id) is None
