"""The Graph stub's routes as Microsoft Graph answers them: members, users, paging, the catalog, installs, chats."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from stubs.graph import GraphStub, aad_id, teams_user_id

MEMBERS = "/groups/{}/transitiveMembers/microsoft.graph.user"
SELECT = "id,userPrincipalName,displayName"
ADVANCED = {"ConsistencyLevel": "eventual"}
MEMBERS_ONLY = "accountEnabled eq true and userType eq 'Member'"
MANIFEST_ID = "8d3b5f0a-6c1e-4f29-b7a4-2e9c0d1f3a56"


@pytest.fixture
def graph() -> Iterator[GraphStub]:
    with GraphStub() as stub:
        yield stub


def get(stub: GraphStub, path: str, params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None) -> requests.Response:
    return requests.get(stub.base_url + path, params=params, headers=headers, timeout=10)


def members(stub: GraphStub, group_id: str, **params: str) -> requests.Response:
    return get(stub, MEMBERS.format(group_id), {"$select": SELECT, "$count": "true", **params}, ADVANCED)


def install(stub: GraphStub, user: str, catalog_id: str) -> requests.Response:
    return requests.post(f"{stub.base_url}/users/{quote(user, safe='')}/teamwork/installedApps", timeout=10,
                         json={"teamsApp@odata.bind": f"{stub.base_url}/appCatalogs/teamsApps/{catalog_id}"})


def all_pages(stub: GraphStub, first: requests.Response, headers: dict[str, str] | None = None) -> list[dict]:
    body = first.json()
    values = list(body["value"])
    while "@odata.nextLink" in body:
        body = requests.get(body["@odata.nextLink"], headers=headers, timeout=10).json()
        values.extend(body["value"])
    return values


# --- group members ------------------------------------------------------------------------------------------------

def test_members_cast_without_consistency_level_is_400_unsupported_query(graph: GraphStub) -> None:
    group = graph.add_group(members=[graph.add_user().id])

    answer = get(graph, MEMBERS.format(group), {"$select": SELECT, "$count": "true"})

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "Request_UnsupportedQuery"


def test_members_cast_without_count_is_400_unsupported_query(graph: GraphStub) -> None:
    group = graph.add_group(members=[graph.add_user().id])

    answer = get(graph, MEMBERS.format(group), {"$select": SELECT}, ADVANCED)

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "Request_UnsupportedQuery"


def test_members_are_the_users_of_nested_groups_each_once_despite_a_cycle(graph: GraphStub) -> None:
    ada, bob, cy = (graph.add_user(upn=f"{n}@contoso.example", display_name=n.title()) for n in ("ada", "bob", "cy"))
    inner = graph.add_group(members=[bob.id, cy.id, graph.add_device(), graph.add_org_contact()])
    outer = graph.add_group(members=[ada.id, bob.id, inner])
    graph.add_members(inner, [outer, ada.id])  # a cycle, and ada twice

    answer = members(graph, outer)

    assert answer.status_code == 200
    assert answer.json()["value"] == [
        {"id": ada.id, "userPrincipalName": "ada@contoso.example", "displayName": "Ada"},
        {"id": bob.id, "userPrincipalName": "bob@contoso.example", "displayName": "Bob"},
        {"id": cy.id, "userPrincipalName": "cy@contoso.example", "displayName": "Cy"}]
    assert answer.json()["@odata.count"] == 3


def test_members_page_by_top_with_an_absolute_next_link_until_the_last_page(graph: GraphStub) -> None:
    users = graph.add_users(250, group="g-250")

    first = members(graph, "g-250", **{"$top": "100"})
    body = first.json()
    link = urlsplit(body["@odata.nextLink"])

    assert (len(body["value"]), body["@odata.count"]) == (100, 250)
    assert f"{link.scheme}://{link.netloc}{link.path}" == graph.base_url + MEMBERS.format("g-250")
    assert parse_qs(link.query)["$skiptoken"] and parse_qs(link.query)["$top"] == ["100"]
    assert [u["id"] for u in all_pages(graph, first, ADVANCED)] == [u.id for u in users]


def test_members_next_link_needs_consistency_level_too(graph: GraphStub) -> None:
    graph.add_users(150, group="g")

    link = members(graph, "g").json()["@odata.nextLink"]

    assert requests.get(link, timeout=10).status_code == 400


def test_members_default_page_is_100(graph: GraphStub) -> None:
    graph.add_users(101, group="g")

    body = members(graph, "g").json()

    assert len(body["value"]) == 100 and "@odata.nextLink" in body


@pytest.mark.parametrize("top", ["1000", "0", "lots"])
def test_members_top_outside_1_to_999_is_400(graph: GraphStub, top: str) -> None:
    graph.add_users(3, group="g")

    answer = members(graph, "g", **{"$top": top})

    assert answer.status_code == 400
    assert "between 1 and 999" in answer.json()["error"]["message"]


def test_members_of_an_unknown_group_is_404_request_resource_not_found(graph: GraphStub) -> None:
    answer = members(graph, "7f0c2e51-0000-4000-8000-000000000000")

    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "Request_ResourceNotFound"


def test_a_skiptoken_from_another_query_is_400(graph: GraphStub) -> None:
    graph.add_users(150, group="g1")
    graph.add_group("g2", members=[u.id for u in graph.transitive_users("g1")])
    token = parse_qs(urlsplit(members(graph, "g1").json()["@odata.nextLink"]).query)["$skiptoken"][0]

    answer = members(graph, "g2", **{"$skiptoken": token})

    assert answer.status_code == 400


# --- users -----------------------------------------------------------------------------------------------------

@pytest.fixture
def tenant(graph: GraphStub) -> dict[str, str]:
    """Four users: an enabled member, an enabled guest, a disabled member, a disabled guest."""
    return {
        "member": graph.add_user(display_name="member").id,
        "guest": graph.add_user(display_name="guest", user_type="Guest").id,
        "disabled": graph.add_user(display_name="disabled", account_enabled=False).id,
        "disabled guest": graph.add_user(display_name="disabled guest", user_type="Guest", account_enabled=False).id}


def test_users_filter_enabled_members_leaves_out_guests_and_disabled_accounts(graph: GraphStub, tenant) -> None:
    answer = get(graph, "/users", {"$select": SELECT, "$filter": MEMBERS_ONLY, "$top": "999"})

    assert answer.status_code == 200
    assert [u["id"] for u in answer.json()["value"]] == [tenant["member"]]


def test_users_filter_enabled_only_includes_guests(graph: GraphStub, tenant) -> None:
    answer = get(graph, "/users", {"$select": SELECT, "$filter": "accountEnabled eq true", "$top": "999"})

    assert [u["id"] for u in answer.json()["value"]] == [tenant["member"], tenant["guest"]]


def test_users_filter_arrives_percent_encoded_and_parses_the_same(graph: GraphStub, tenant) -> None:
    query = "%24select=id&%24filter=accountEnabled%20eq%20true%20and%20userType%20eq%20%27Member%27&%24top=999"

    answer = requests.get(f"{graph.base_url}/users?{query}", timeout=10)

    assert answer.json()["value"] == [{"id": tenant["member"]}]


@pytest.mark.parametrize("bad_filter", [
    "accountEnabled ne true", "accountEnabled eq true or userType eq 'Member'", "startswith(displayName,'a')",
    "department eq 'Sales'", "accountEnabled eq 'yes'", "accountEnabled eq true and", "(accountEnabled eq true)"])
def test_users_filter_it_does_not_understand_is_400_unsupported_query(graph: GraphStub, bad_filter: str) -> None:
    answer = get(graph, "/users", {"$select": SELECT, "$filter": bad_filter})

    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "Request_UnsupportedQuery"


def test_users_select_of_an_unknown_property_is_400(graph: GraphStub) -> None:
    answer = get(graph, "/users", {"$select": "id,shoeSize"})

    assert answer.status_code == 400
    assert "shoeSize" in answer.json()["error"]["message"]


def test_users_count_needs_consistency_level(graph: GraphStub, tenant) -> None:
    without = get(graph, "/users", {"$count": "true"})
    with_header = get(graph, "/users", {"$count": "true"}, ADVANCED)

    assert without.status_code == 400
    assert (with_header.status_code, with_header.json()["@odata.count"]) == (200, 4)


def test_ten_thousand_users_page_by_999_in_eleven_fast_requests(graph: GraphStub) -> None:
    started = time.monotonic()
    graph.add_users(10_000)
    graph.add_users(500, prefix="guest", user_type="Guest")

    first = get(graph, "/users", {"$select": SELECT, "$filter": MEMBERS_ONLY, "$top": "999"})
    pages = [first.json()]
    while "@odata.nextLink" in pages[-1]:
        pages.append(requests.get(pages[-1]["@odata.nextLink"], timeout=10).json())

    assert [len(p["value"]) for p in pages] == [999] * 10 + [10]
    assert len({u["id"] for p in pages for u in p["value"]}) == 10_000
    assert time.monotonic() - started < 5


def test_generated_users_have_stable_ids(graph: GraphStub) -> None:
    made = graph.add_users(2, prefix="sales")

    assert [u.id for u in made] == [aad_id("sales-0"), aad_id("sales-1")]
    assert made[0].teams_id == teams_user_id(aad_id("sales-0")) and made[0].teams_id.startswith("29:")


# --- the catalog, installs and chats -----------------------------------------------------------------------------

@pytest.fixture
def catalog_id(graph: GraphStub) -> str:
    return graph.register_app(MANIFEST_ID, display_name="Notifier")


def test_catalog_lookup_by_external_id_gives_the_catalog_id(graph: GraphStub, catalog_id: str) -> None:
    graph.register_app("another-manifest-id")

    answer = get(graph, "/appCatalogs/teamsApps", {"$filter": f"externalId eq '{MANIFEST_ID}'"})

    assert answer.status_code == 200
    assert answer.json()["value"] == [{"id": catalog_id, "externalId": MANIFEST_ID, "displayName": "Notifier",
                                       "distributionMethod": "organization"}]


def test_install_for_a_user_is_201_with_no_body(graph: GraphStub, catalog_id: str) -> None:
    user = graph.add_user()

    answer = install(graph, user.id, catalog_id)

    assert (answer.status_code, answer.content) == (201, b"")
    assert graph.installs == 1 and graph.installation(user.id) is not None


def test_install_by_user_principal_name_installs_for_that_user(graph: GraphStub, catalog_id: str) -> None:
    user = graph.add_user(upn="Ada.Lovelace@contoso.example")

    answer = install(graph, "ada.lovelace@contoso.example", catalog_id)

    assert answer.status_code == 201 and graph.installation(user.id) is not None


def test_second_install_of_the_same_app_is_409_conflict(graph: GraphStub, catalog_id: str) -> None:
    user = graph.add_user()
    install(graph, user.id, catalog_id)

    answer = install(graph, user.id, catalog_id)

    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "Conflict"
    assert graph.installs == 1


def test_install_for_a_user_installed_beforehand_is_409(graph: GraphStub, catalog_id: str) -> None:
    user = graph.add_user()
    graph.install(user.id)

    assert install(graph, user.id, catalog_id).status_code == 409


def test_install_blocked_by_policy_is_403(graph: GraphStub, catalog_id: str) -> None:
    user = graph.add_user(install_blocked=True)

    answer = install(graph, user.id, catalog_id)

    assert answer.status_code == 403
    assert graph.installation(user.id) is None


@pytest.mark.parametrize("who", ["unlicensed", "unknown"])
def test_install_for_a_user_without_teams_or_unknown_is_404(graph: GraphStub, catalog_id: str, who: str) -> None:
    user_id = graph.add_user(licensed=False).id if who == "unlicensed" else "0b6e3c2a-1111-4000-8000-000000000000"

    answer = install(graph, user_id, catalog_id)

    assert answer.status_code == 404
    assert graph.installs == 0


@pytest.mark.parametrize("bind", [None, "https://example.com/appCatalogs/teamsApps/x", 42])
def test_install_without_a_catalog_binding_is_400(graph: GraphStub, catalog_id: str, bind: object) -> None:
    user = graph.add_user()

    answer = requests.post(f"{graph.base_url}/users/{user.id}/teamwork/installedApps",
                           json={} if bind is None else {"teamsApp@odata.bind": bind}, timeout=10)

    assert answer.status_code == 400


def test_install_binding_with_the_real_graph_url_is_accepted(graph: GraphStub, catalog_id: str) -> None:
    user = graph.add_user()

    answer = requests.post(f"{graph.base_url}/users/{user.id}/teamwork/installedApps", timeout=10, json={
        "teamsApp@odata.bind": f"https://graph.microsoft.com/v1.0/appCatalogs/teamsApps/{catalog_id}"})

    assert answer.status_code == 201


def test_errors_have_graph_shape_and_echo_the_client_request_id(graph: GraphStub) -> None:
    answer = get(graph, MEMBERS.format("missing"), {"$count": "true"}, {**ADVANCED, "client-request-id": "abc-123"})

    error = answer.json()["error"]
    assert set(error) == {"code", "message", "innerError"}
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    assert error["innerError"]["client-request-id"] == answer.headers["client-request-id"] == "abc-123"
    assert error["innerError"]["request-id"] == answer.headers["request-id"]


def test_installed_apps_filtered_by_catalog_id_give_the_installation_with_its_app(graph: GraphStub,
                                                                                   catalog_id: str) -> None:
    user = graph.add_user()
    install(graph, user.id, catalog_id)

    answer = get(graph, f"/users/{user.id}/teamwork/installedApps",
                 {"$expand": "teamsApp", "$filter": f"teamsApp/id eq '{catalog_id}'"})

    assert answer.status_code == 200
    assert answer.json()["value"] == [{"id": graph.installation(user.id).id, "teamsApp": {
        "id": catalog_id, "externalId": MANIFEST_ID, "displayName": "Notifier", "distributionMethod": "organization"}}]


def test_installed_apps_of_a_user_without_the_app_is_an_empty_list(graph: GraphStub, catalog_id: str) -> None:
    user = graph.add_user()

    answer = get(graph, f"/users/{user.id}/teamwork/installedApps",
                 {"$expand": "teamsApp", "$filter": f"teamsApp/id eq '{catalog_id}'"})

    assert (answer.status_code, answer.json()["value"]) == (200, [])


def test_installation_chat_is_the_one_on_one_chat_of_the_user_and_the_bot(graph: GraphStub, catalog_id: str) -> None:
    user = graph.add_user()
    install(graph, user.id, catalog_id)
    installation_id = graph.installation(user.id).id

    answer = get(graph, f"/users/{user.id}/teamwork/installedApps/{quote(installation_id, safe='')}/chat")

    assert answer.status_code == 200
    assert answer.json()["id"] == f"19:{user.id}_{MANIFEST_ID}@unq.gbl.spaces" == graph.chat_id_for(user.id)
    assert answer.json()["chatType"] == "oneOnOne" and answer.json()["tenantId"] == graph.tenant_id


def test_installation_id_names_the_user_and_the_app(graph: GraphStub, catalog_id: str) -> None:
    user = graph.add_user()

    installation = graph.install(user.id)

    assert base64.b64decode(installation.id).decode() == f"{user.id}##{catalog_id}"


def test_chat_of_an_unknown_installation_is_404(graph: GraphStub, catalog_id: str) -> None:
    user = graph.add_user()

    answer = get(graph, f"/users/{user.id}/teamwork/installedApps/bm90LWluc3RhbGxlZA%3D%3D/chat")

    assert answer.status_code == 404


def test_a_route_the_stub_does_not_serve_is_400_naming_the_segment(graph: GraphStub) -> None:
    answer = get(graph, "/me/joinedTeams")

    assert answer.status_code == 400
    assert "joinedTeams" in answer.json()["error"]["message"]


# --- one user, and ids in any case ----------------------------------------------------------------------------

def test_one_user_by_id_or_user_principal_name(graph: GraphStub) -> None:
    user = graph.add_user(upn="ada@contoso.example", display_name="Ada")

    by_id = get(graph, f"/users/{user.id}", {"$select": SELECT})
    by_upn = get(graph, "/users/ADA@contoso.example", {"$select": SELECT})

    assert by_id.status_code == by_upn.status_code == 200
    assert {k: v for k, v in by_id.json().items() if not k.startswith("@")} == {
        "id": user.id, "userPrincipalName": "ada@contoso.example", "displayName": "Ada"}
    assert by_upn.json()["id"] == user.id


def test_one_unknown_user_is_404_request_resource_not_found(graph: GraphStub) -> None:
    answer = get(graph, "/users/6a1f3e2d-0000-4000-8000-000000000000")

    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "Request_ResourceNotFound")


def test_object_ids_match_whatever_their_case(graph: GraphStub) -> None:
    user = graph.add_user("3F2A9C1E-7B4D-4E60-9A85-2C1D0E7F6B3A")
    graph.add_group("B5D1E8A2-4C3F-4A97-8E06-1F2B3C4D5E6F", members=[user.id.lower()])

    answers = [members(graph, "b5d1e8a2-4c3f-4a97-8e06-1f2b3c4d5e6f"), get(graph, f"/users/{user.id.lower()}")]

    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["value"][0]["id"] == user.id
