"""The Graph stub's token checks: Graph's audience, the app's roles, client credentials and managed identity."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from stubs.connector import ConnectorStub
from stubs.graph import GRAPH_SCOPE, GROUP_MEMBERS_ROLE, INSTALL_ROLE, USERS_ROLE, GraphStub, any_issuer
from stubs.managed_identity import BOT_RESOURCE, ManagedIdentityStub
from stubs.token import TokenStub

APP_ID, SECRET, TENANT = "graph-app-id", "graph-app-secret", "5d2e7a1c-3f4b-4c8e-9a61-0b7d3e5f9c24"
BOT_SCOPE = "https://api.botframework.com/.default"
MSI_CLIENT_ID = "0d9e4a7b-5c3f-4e21-8b6a-1f2e3d4c5b6a"
CATALOG_ID = "c4a1e9f2-7d3b-4a65-8e10-9b2c5d7f3e41"


@pytest.fixture
def login() -> Iterator[TokenStub]:
    with TokenStub(APP_ID, SECRET) as stub:
        yield stub


@pytest.fixture
def identity() -> Iterator[ManagedIdentityStub]:
    with ManagedIdentityStub(MSI_CLIENT_ID) as stub:
        yield stub


@pytest.fixture
def graph(login: TokenStub, identity: ManagedIdentityStub) -> Iterator[GraphStub]:
    with GraphStub(auth=any_issuer(login.claims, identity.claims)) as stub:
        stub.register_app("manifest-id", catalog_id=CATALOG_ID)
        stub.add_users(3, group="g")
        yield stub


def client_credentials(login: TokenStub, scope: str = GRAPH_SCOPE) -> str:
    answer = requests.post(f"{login.url}/{TENANT}/oauth2/v2.0/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": APP_ID, "client_secret": SECRET, "scope": scope})
    answer.raise_for_status()
    return answer.json()["access_token"]


def managed_identity(identity: ManagedIdentityStub, resource: str) -> str:
    answer = requests.get(identity.endpoint, headers={"X-IDENTITY-HEADER": identity.header}, timeout=10, params={
        "resource": resource, "api-version": "2019-08-01", "client_id": MSI_CLIENT_ID})
    answer.raise_for_status()
    return answer.json()["access_token"]


def list_users(graph: GraphStub, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.get(f"{graph.base_url}/users", params={"$select": "id"}, headers=headers, timeout=10)


def test_client_credentials_token_for_graph_is_accepted(graph: GraphStub, login: TokenStub) -> None:
    answer = list_users(graph, client_credentials(login))

    assert answer.status_code == 200 and len(answer.json()["value"]) == 3


def test_graph_token_carries_graph_audience_the_tenant_and_the_apps_roles(login: TokenStub) -> None:
    claims = login.claims(client_credentials(login))

    assert (claims["aud"], claims["tid"], claims["appid"]) == ("https://graph.microsoft.com", TENANT, APP_ID)
    assert {INSTALL_ROLE, GROUP_MEMBERS_ROLE, USERS_ROLE} <= set(claims["roles"])


def test_bot_connector_token_is_401_invalid_authentication_token(graph: GraphStub, login: TokenStub) -> None:
    answer = list_users(graph, client_credentials(login, BOT_SCOPE))

    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert "audience" in answer.json()["error"]["message"].lower()


def test_graph_token_is_refused_by_the_connector(login: TokenStub) -> None:
    with ConnectorStub(token_check=login.is_valid) as connector:
        answer = requests.post(f"{connector.url}/v3/conversations/c-1/activities", json={"type": "message"},
                               headers={"Authorization": f"Bearer {client_credentials(login)}"}, timeout=10)

    assert answer.status_code == 401


def test_missing_token_is_401_when_auth_is_on(graph: GraphStub) -> None:
    answer = list_users(graph, None)

    assert answer.status_code == 401
    assert answer.json()["error"] | {"innerError": None} == {
        "code": "InvalidAuthenticationToken", "message": "Access token is empty.", "innerError": None}


def test_unknown_token_is_401(graph: GraphStub) -> None:
    assert list_users(graph, "not-a-token-anyone-issued").status_code == 401


def test_expired_token_is_401(graph: GraphStub, login: TokenStub) -> None:
    token = client_credentials(login)
    login.expire_all()

    answer = list_users(graph, token)

    assert answer.status_code == 401
    assert "expired" in answer.json()["error"]["message"]


@pytest.mark.parametrize(("role", "call"), [
    (USERS_ROLE, ("GET", "/users", None)),
    (GROUP_MEMBERS_ROLE, ("GET", "/groups/g/transitiveMembers/microsoft.graph.user?$count=true", None)),
    (INSTALL_ROLE, ("POST", "/users/{user}/teamwork/installedApps", "install")),
])
def test_missing_application_permission_is_403_authorization_request_denied(
        graph: GraphStub, login: TokenStub, role: str, call: tuple[str, str, str | None]) -> None:
    login.graph_roles.discard(role)
    method, path, body = call
    user = graph.transitive_users("g")[0].id
    payload = {"teamsApp@odata.bind": f"{graph.base_url}/appCatalogs/teamsApps/{CATALOG_ID}"} if body else None

    answer = requests.request(method, graph.base_url + path.format(user=user), json=payload, timeout=10, headers={
        "Authorization": f"Bearer {client_credentials(login)}", "ConsistencyLevel": "eventual"})

    assert answer.status_code == 403
    assert (answer.json()["error"]["code"], answer.json()["error"]["message"]) == (
        "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    assert graph.installs == 0


def test_removing_one_role_leaves_the_other_routes_working(graph: GraphStub, login: TokenStub) -> None:
    login.graph_roles.discard(INSTALL_ROLE)

    assert list_users(graph, client_credentials(login)).status_code == 200


def test_managed_identity_token_for_graph_is_accepted(graph: GraphStub, identity: ManagedIdentityStub) -> None:
    answer = list_users(graph, managed_identity(identity, "https://graph.microsoft.com"))

    assert answer.status_code == 200


def test_managed_identity_token_for_the_bot_connector_is_401(graph: GraphStub, identity: ManagedIdentityStub) -> None:
    answer = list_users(graph, managed_identity(identity, BOT_RESOURCE))

    assert answer.status_code == 401


def test_managed_identity_graph_token_is_not_valid_for_the_connector(identity: ManagedIdentityStub) -> None:
    token = managed_identity(identity, "https://graph.microsoft.com")

    assert identity.is_valid(token, "https://graph.microsoft.com")
    assert not identity.is_valid(token)  # the connector checks the Bot Connector's resource


def test_auth_off_accepts_requests_without_a_token() -> None:
    with GraphStub() as graph:
        graph.add_user()

        assert list_users(graph, None).status_code == 200


def test_auth_off_still_refuses_a_permission_taken_away() -> None:
    with GraphStub(roles_without_token=[GROUP_MEMBERS_ROLE]) as graph:
        answer = list_users(graph, None)

    assert answer.status_code == 403
