"""The authors' page's API: who may call it, what their role allows, forgery, the list and the audit trail."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

import MessagesFunction
import NotifyFunction
import PortalFunction
from devhost.easy_auth import encode_principal
from stubs.openid import OpenIdStub, emulator_issuer
from tests.support.builders import http_request, message
from tests.support.queue_driver import QueueDriver

ORIGIN = "http://localhost:7071"
ADA = "11111111-1111-4111-8111-111111111111"
BOB = "22222222-2222-4222-8222-222222222222"
TENANT = "33333333-3333-4333-8333-333333333333"


def principal(object_id: str = ADA, name: str = "Ada", roles: tuple[str, ...] = ("Admins",)) -> dict[str, str]:
    return {"X-MS-CLIENT-PRINCIPAL": encode_principal(object_id, name, roles)}


def page_headers(**extra: str) -> dict[str, str]:
    return {"X-Portal-Request": "1", "Origin": ORIGIN, "Sec-Fetch-Site": "same-origin", **extra}


def portal(method: str, path: str, body: object = None, *, headers: dict[str, str] | None = None,
           params: dict[str, str] | None = None):
    return PortalFunction.main(http_request(method, f"{ORIGIN}/api/portal/{path}", body, headers=headers,
                                            route_params={"path": path}, params=params))


def as_author(method: str, path: str, body: object = None, *, who: dict[str, str] | None = None,
              params: dict[str, str] | None = None):
    return portal(method, path, body, headers={**page_headers(), **(who or principal())}, params=params)


def payload(response) -> dict:
    return json.loads(response.get_body())


def run_queue_until_done(app_env, notification_id: str) -> None:
    host = QueueDriver(app_env.values["AzureWebJobsStorage"], app_env.values["JobsQueueName"])
    host.run_until(lambda: payload(as_author("GET", f"api/notify/{notification_id}"))["state"] == "done", timeout=30)


@pytest.fixture
def conversations(app_env, connector):
    """Three saved conversations."""
    for n in range(3):
        MessagesFunction.main(http_request("POST", "http://localhost/api/messages",
                                           message(connector.url, "hi", conversation_id=f"conv-{n}")))
    return app_env


@pytest.fixture
def signed_in_env(conversations):
    """Local mode behind App Service Authentication (as the dev host plays it)."""
    conversations.set(WEBSITE_AUTH_ENABLED="True")
    return conversations


def listed(app_env) -> list[str]:
    """The notifications the function-key API lists."""
    answer = NotifyFunction.main(http_request("GET", "http://localhost/api/notify", params={"limit": "100"}))
    return [n["id"] for n in json.loads(answer.get_body())["notifications"]]


def test_the_page_is_served_to_anyone_with_a_policy_that_forbids_inline_scripts(app_env):
    response = portal("GET", "")

    assert response.status_code == 200
    assert b"<main" in response.get_body()
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_the_page_without_its_trailing_slash_redirects_to_it(app_env):
    response = PortalFunction.main(http_request("GET", f"{ORIGIN}/api/portal", route_params={"path": ""}))

    assert response.status_code == 308
    assert response.headers["Location"] == "/api/portal/"


def test_an_unknown_file_is_a_404_with_a_json_error(app_env):
    response = portal("GET", "../local.settings.json")

    assert response.status_code == 404
    assert payload(response)["error"]["code"] == "not_found"


def test_a_principal_header_is_refused_when_platform_authentication_is_off(app_env):
    response = portal("GET", "api/me", headers={**page_headers(), **principal()})

    assert response.status_code == 401
    assert "WEBSITE_AUTH_ENABLED" in payload(response)["error"]["message"]


def test_a_forged_principal_cannot_send_when_platform_authentication_is_off(conversations, connector):
    before = connector.total_delivered()

    response = portal("POST", "api/notify", {"to": "all", "text": "forged"}, headers={**page_headers(), **principal()})

    assert response.status_code == 401
    assert listed(conversations) == []
    assert connector.total_delivered() == before


def test_no_principal_behind_platform_authentication_is_not_signed_in(signed_in_env):
    response = portal("GET", "api/me", headers=page_headers())

    assert response.status_code == 401


def test_me_names_the_author_their_roles_and_audiences(signed_in_env):
    response = as_author("GET", "api/me", who=principal(BOB, "Bob", ("Authors",)))

    assert response.status_code == 200
    assert payload(response) == {"id": BOB, "name": "Bob", "roles": ["Authors"],
                                 "audiences": ["conversation", "user", "team", "teamChannel", "group", "users"]}


def test_a_request_without_the_anti_forgery_header_is_refused_and_creates_nothing(signed_in_env, connector):
    response = portal("POST", "api/notify", {"to": "all", "text": "hi", "id": "n-csrf"},
                      headers={"Origin": ORIGIN, **principal()})

    assert response.status_code == 403
    assert listed(signed_in_env) == []


def test_a_request_from_another_origin_is_refused(signed_in_env):
    response = portal("POST", "api/notify", {"to": "all", "text": "hi"},
                      headers={**page_headers(Origin="https://evil.example"), **principal()})

    assert response.status_code == 403
    assert "origin" in payload(response)["error"]["message"]


def test_a_cross_site_fetch_is_refused_even_with_the_header(signed_in_env):
    response = portal("GET", "api/notify", headers={**page_headers(**{"Sec-Fetch-Site": "cross-site"}), **principal()})

    assert response.status_code == 403


def test_someone_without_a_role_may_see_who_they_are_but_not_the_notifications(signed_in_env):
    who = principal(BOB, "Bob", ())

    assert as_author("GET", "api/me", who=who).status_code == 200
    refused = as_author("GET", "api/notify", who=who)
    assert refused.status_code == 403
    assert "Authors" in payload(refused)["error"]["message"]


def test_an_author_sending_to_everyone_is_refused_and_nothing_is_created(signed_in_env, connector):
    response = as_author("POST", "api/notify", {"id": "n-all", "to": "all", "text": "to all"},
                         who=principal(BOB, "Bob", ("Authors",)))

    assert response.status_code == 403
    assert "'all'" in payload(response)["error"]["message"]
    assert listed(signed_in_env) == []


def test_an_admin_sends_to_everyone_and_is_recorded_as_its_author(signed_in_env):
    response = as_author("POST", "api/notify", {"id": "n-1", "to": "all", "text": "Hello all"})
    run_queue_until_done(signed_in_env, "n-1")

    assert response.status_code == 202
    status = payload(as_author("GET", "api/notify/n-1"))
    assert status["state"] == "done" and status["sent"] == 3
    assert status["createdBy"] == {"id": ADA, "name": "Ada"}
    assert [entry["action"] for entry in status["audit"]] == ["created"]


def test_an_author_may_cancel_their_own_notification_but_not_recall_another_authors(signed_in_env):
    bob, cyd = principal(BOB, "Bob", ("Authors",)), principal("44444444-4444-4444-8444-444444444444", "Cyd",
                                                               ("Authors",))
    as_author("POST", "api/notify", {"id": "n-bob", "to": {"conversation": "conv-1"}, "text": "x",
                                     "notBefore": "2099-01-01T00:00:00Z"}, who=bob)

    refused = as_author("POST", "api/notify/n-bob/recall", who=cyd)
    allowed = as_author("DELETE", "api/notify/n-bob", who=bob)

    assert refused.status_code == 403
    assert allowed.status_code == 200 and payload(allowed)["state"] == "cancelled"
    assert [(e["action"], e["by"]) for e in payload(allowed)["audit"]] == [("created", "Bob"), ("cancelled", "Bob")]


def test_the_list_is_newest_first_paged_and_filtered_by_author(signed_in_env):
    bob = principal(BOB, "Bob", ("Authors",))
    for n in range(3):
        as_author("POST", "api/notify", {"id": f"n-{n}", "to": {"conversation": "conv-1"}, "text": f"number {n}",
                                         "notBefore": "2099-01-01T00:00:00Z"}, who=bob if n == 1 else None)
        time.sleep(0.002)  # distinct milliseconds: the list's order is the creation time's

    first = payload(as_author("GET", "api/notify", params={"limit": "2"}))
    second = payload(as_author("GET", "api/notify", params={"limit": "2", "after": first["next"]}))
    bobs = payload(as_author("GET", "api/notify", params={"mine": "1"}, who=bob))
    by_bob = payload(as_author("GET", "api/notify", params={"author": BOB}))

    assert [n["id"] for n in first["notifications"]] == ["n-2", "n-1"]
    assert [n["id"] for n in second["notifications"]] == ["n-0"] and "next" not in second
    assert [n["id"] for n in bobs["notifications"]] == ["n-1"]
    assert [n["id"] for n in by_bob["notifications"]] == ["n-1"]
    assert first["notifications"][0]["summary"] == "number 2"


def test_the_list_keeps_one_state(signed_in_env):
    as_author("POST", "api/notify", {"id": "n-now", "to": "all", "text": "now"})
    as_author("POST", "api/notify", {"id": "n-later", "to": "all", "text": "later", "notBefore": "2099-01-01T00:00:00Z"})
    run_queue_until_done(signed_in_env, "n-now")

    scheduled = payload(as_author("GET", "api/notify", params={"state": "scheduled"}))

    assert [n["id"] for n in scheduled["notifications"]] == ["n-later"]


def test_the_function_key_api_lists_notifications_and_names_a_service_as_the_author(app_env, connector):
    MessagesFunction.main(http_request("POST", "http://localhost/api/messages",
                                       message(connector.url, "hi", conversation_id="conv-9")))
    NotifyFunction.main(http_request("POST", "http://localhost/api/notify",
                                     {"id": "n-key", "to": {"conversation": "conv-9"}, "text": "hi"}))

    listed = payload(NotifyFunction.main(http_request("GET", "http://localhost/api/notify", params={"limit": "5"})))

    assert [n["id"] for n in listed["notifications"]] == ["n-key"]
    assert listed["notifications"][0]["createdBy"]["id"] == ""


def test_the_audit_trail_downloads_as_csv_with_who_and_what(signed_in_env):
    as_author("POST", "api/notify", {"id": "n-a", "to": {"conversation": "conv-1"}, "text": "x",
                                     "notBefore": "2099-01-01T00:00:00Z"})
    as_author("DELETE", "api/notify/n-a")

    response = as_author("GET", "api/notify/n-a/audit")

    rows = list(csv.DictReader(io.StringIO(response.get_body().decode())))
    assert response.status_code == 200
    assert [(r["action"], r["by"], r["by id"]) for r in rows] == [("created", "Ada", ADA), ("cancelled", "Ada", ADA)]


def test_a_bad_limit_is_a_400(signed_in_env):
    assert as_author("GET", "api/notify", params={"limit": "0"}).status_code == 400
    assert as_author("GET", "api/notify", params={"limit": "x"}).status_code == 400


class TestDeployed:
    """With a MicrosoftAppId the principal header alone is not enough: Easy Auth's ID token must verify."""

    @pytest.fixture
    def deployed(self, app_env):
        with OpenIdStub("bot-app") as openid:
            app_env.set(WEBSITE_AUTH_ENABLED="True", MicrosoftAppId="bot-app", MicrosoftAppTenantId=TENANT,
                        MicrosoftAppType="SingleTenant", MicrosoftAppPassword="secret", PortalClientId="portal-app",
                        PortalOpenIdMetadataUrl=openid.emulator_metadata_url)
            yield openid

    def id_token(self, openid: OpenIdStub, **claims: object) -> str:
        now = int(time.time())
        base = {"iss": emulator_issuer(TENANT, "2.0"), "aud": "portal-app", "oid": ADA, "iat": now, "exp": now + 3600,
                "tid": TENANT}
        return openid.sign(base, claims, kid=openid.emulator_kid)

    def test_a_verified_id_token_of_the_same_person_signs_in(self, deployed):
        who = {**principal(), "X-MS-TOKEN-AAD-ID-TOKEN": self.id_token(deployed)}

        assert as_author("GET", "api/me", who=who).status_code == 200

    def test_a_principal_without_an_id_token_is_refused(self, deployed):
        assert as_author("GET", "api/me").status_code == 401

    def test_an_id_token_for_another_app_is_refused(self, deployed):
        who = {**principal(), "X-MS-TOKEN-AAD-ID-TOKEN": self.id_token(deployed, aud="other-app")}

        assert as_author("GET", "api/me", who=who).status_code == 401

    def test_an_id_token_of_someone_else_is_refused(self, deployed):
        who = {**principal(), "X-MS-TOKEN-AAD-ID-TOKEN": self.id_token(deployed, oid=BOB)}

        assert as_author("GET", "api/me", who=who).status_code == 401

    def test_an_id_token_signed_with_an_unpublished_key_is_refused(self, deployed):
        token = deployed.sign({"iss": emulator_issuer(TENANT, "2.0"), "aud": "portal-app", "oid": ADA,
                               "exp": int(time.time()) + 3600}, key=OpenIdStub.unpublished_key())
        who = {**principal(), "X-MS-TOKEN-AAD-ID-TOKEN": token}

        assert as_author("GET", "api/me", who=who).status_code == 401
