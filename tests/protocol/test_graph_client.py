"""The Graph client against the Graph stub: pages, the app's installs, the token it sends, and what each
refusal becomes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from shared_code.plumbing.errors import AppRejected, BadInput, Throttled, Upstream
from shared_code.plumbing.settings import GRAPH_SCOPE, load_settings
from shared_code.protocol.graph import GraphClient, InstallRefused, NoBearer, PermissionMissing, odata_string
from shared_code.protocol.outbound_auth import OutboundCredentials
from stubs.graph import CallKind, GraphFault, GraphLimits, GraphStub, aad_id
from stubs.token import TokenStub

APP_ID = "8d3b5f0a-6c1e-4f29-b7a4-2e9c0d1f3a56"


@pytest.fixture
def graph() -> Iterator[GraphStub]:
    with GraphStub(limits=GraphLimits.off()) as stub:
        yield stub


def client(stub: GraphStub, credentials=None) -> GraphClient:
    return GraphClient(stub.base_url, credentials or NoBearer(), requests.Session())


def test_a_groups_users_come_a_page_at_a_time_each_once(graph):
    users = graph.add_users(250, prefix="p")
    inner = graph.add_group(members=[u.id for u in users[:100]])
    group = graph.add_group(members=[u.id for u in users] + [inner])
    graph_client = client(graph)

    pages, link = [], None
    while True:
        page = graph_client.group_users(group, next_link=link, page_size=100)
        pages.append(len(page.users))
        if page.next_link is None:
            break
        link = page.next_link

    assert pages == [100, 100, 50]


def test_the_tenants_users_leave_out_guests_and_disabled_accounts_unless_guests_are_asked_for(graph):
    graph.add_users(3, prefix="member")
    graph.add_users(2, prefix="guest", user_type="Guest")
    graph.add_users(1, prefix="off", account_enabled=False)

    members = client(graph).tenant_users()
    everyone = client(graph).tenant_users(include_guests=True)

    assert (len(members.users), len(everyone.users)) == (3, 5)


def test_a_next_page_link_that_does_not_point_at_graph_base_url_is_not_followed(graph):
    group = graph.add_group(members=[u.id for u in graph.add_users(3, prefix="p")])

    with pytest.raises(Upstream, match="not followed"):
        client(graph).group_users(group, next_link="https://elsewhere.example/v1.0/x").next_link  # noqa: B018
    with pytest.raises(Upstream, match="not followed"):
        GraphClient("https://graph.example/v1.0", NoBearer(), requests.Session())._follow(  # noqa: SLF001
            {"@odata.nextLink": "https://graph.example/v1.0.evil.example/users"})


def test_install_is_true_when_made_and_false_when_the_app_was_already_there(graph):
    catalog = graph.register_app(APP_ID)
    [user] = graph.add_users(1, prefix="p")
    graph_client = client(graph)

    assert graph_client.install(user.id, catalog) is True
    assert graph_client.install(user.id, catalog) is False
    installation = graph_client.installation_id(user.id, catalog)
    assert graph_client.chat_id(user.id, installation) == graph.chat_id_for(user.id)


@pytest.mark.parametrize(("fields", "code"), [({"install_blocked": True}, "install_blocked"),
                                              ({"licensed": False}, "no_teams_license")])
def test_a_person_the_app_cannot_be_installed_for_is_refused_with_a_code(graph, fields, code):
    catalog = graph.register_app(APP_ID)
    [user] = graph.add_users(1, prefix="p", **fields)

    with pytest.raises(InstallRefused) as refused:
        client(graph).install(user.id, catalog)

    assert refused.value.code == code


def test_a_missing_application_permission_is_named(graph):
    catalog = graph.register_app(APP_ID)
    [user] = graph.add_users(1, prefix="p")
    graph.roles_without_token.discard("TeamsAppInstallation.ReadWriteSelfForUser.All")

    with pytest.raises(PermissionMissing, match="TeamsAppInstallation.ReadWriteSelfForUser.All"):
        client(graph).install(user.id, catalog)


@pytest.mark.parametrize("status", [429, 503, 504])
def test_throttling_and_outages_raise_throttled_with_retry_after(graph, status):
    catalog = graph.register_app(APP_ID)
    [user] = graph.add_users(1, prefix="p")
    graph.fail_next(CallKind.INSTALL, GraphFault(status, retry_after=3))

    with pytest.raises(Throttled) as throttled:
        client(graph).install(user.id, catalog)

    assert (throttled.value.status, throttled.value.retry_after) == (status, 3.0)


def test_ids_that_are_not_object_ids_never_reach_a_url_or_a_filter(graph):
    with pytest.raises(BadInput):
        client(graph).group_users("x' or 1 eq 1")
    with pytest.raises(BadInput):
        client(graph).install(aad_id("p"), "bad' or ''='")
    assert odata_string("O'Brien") == "'O''Brien'"


def test_the_token_sent_is_for_graph_from_the_tenants_login_and_refused_tokens_are_fetched_again():
    with TokenStub(APP_ID, "secret") as tokens, GraphStub(limits=GraphLimits.off(), auth=tokens.claims) as graph:
        catalog = graph.register_app(APP_ID)
        [user] = graph.add_users(1, prefix="p")
        settings = load_settings({"MicrosoftAppId": APP_ID, "MicrosoftAppPassword": "secret",
                                  "MicrosoftAppType": "SingleTenant", "MicrosoftAppTenantId": graph.tenant_id,
                                  "ToChannelFromBotLoginUrl": tokens.login_url(graph.tenant_id)})
        credentials = OutboundCredentials(settings, scope=GRAPH_SCOPE, tenant=graph.tenant_id)

        assert client(graph, credentials).install(user.id, catalog) is True
        assert tokens.scopes == [GRAPH_SCOPE] and tokens.tenants == [graph.tenant_id]


def test_a_token_graph_keeps_refusing_stops_with_a_clear_error():
    class Wrong:
        def bearer(self) -> str:
            return "Bearer not-a-graph-token"

        def invalidate(self, rejected=None) -> None:
            pass

    with TokenStub(APP_ID, "secret") as tokens, GraphStub(limits=GraphLimits.off(), auth=tokens.claims) as graph:
        [user] = graph.add_users(1, prefix="p")

        with pytest.raises(AppRejected, match="graph.microsoft.com"):
            client(graph, Wrong()).install(user.id, graph.register_app(APP_ID))


def test_a_managed_identity_asks_its_endpoint_for_a_graph_token_and_graph_accepts_it():
    from stubs.managed_identity import ManagedIdentityStub

    client_id = "6f1c0f5e-0000-4000-8000-00000000b07a"
    with ManagedIdentityStub(client_id) as identity, \
            GraphStub(limits=GraphLimits.off(), auth=identity.claims) as graph:
        [user] = graph.add_users(1, prefix="p")
        settings = load_settings({"MicrosoftAppId": client_id, "MicrosoftAppType": "UserAssignedMSI",
                                  "MicrosoftAppTenantId": graph.tenant_id})
        credentials = OutboundCredentials(settings, scope=GRAPH_SCOPE, tenant=graph.tenant_id,
                                          environ=identity.environment())

        assert client(graph, credentials).install(user.id, graph.register_app(APP_ID)) is True
