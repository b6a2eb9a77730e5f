"""The bot's token from its user-assigned managed identity (MicrosoftAppType=UserAssignedMSI), against the
stand-in for the platform's identity endpoint: as strict as the client-credentials path."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from shared_code.plumbing import errors
from shared_code.plumbing.settings import load_settings
from shared_code.protocol.activity import Activity
from shared_code.protocol.inbound_auth import InboundAuthenticator
from shared_code.protocol.outbound_auth import OutboundCredentials
from stubs.connector import ConnectorStub
from stubs.managed_identity import BOT_RESOURCE, ManagedIdentityStub
from stubs.openid import OpenIdStub
from stubs.server import StubResponse, StubServer

CLIENT_ID = "6f1c0f5e-0000-4000-8000-00000000b07a"  # the identity's client id = MicrosoftAppId
TENANT = "11111111-2222-3333-4444-555555555555"
SERVICE_URL = "https://smba.example.test/amer/"


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def msi_credentials(environ: dict[str, str], *, clock: Callable[[], float] | None = None,
                    session: requests.Session | None = None, **env: str) -> OutboundCredentials:
    values = {"MicrosoftAppId": CLIENT_ID, "MicrosoftAppType": "UserAssignedMSI", "MicrosoftAppTenantId": TENANT}
    values.update(env)
    return OutboundCredentials(load_settings(values), session=session, clock=clock or time.time, environ=environ)


def run_concurrently(count: int, call: Callable[[], Any]) -> list[Any]:
    """`count` threads released together; each result or raised exception, in thread order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - returned for the test to assert on
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.fixture(scope="module")
def _shared_identity() -> Iterator[ManagedIdentityStub]:
    with ManagedIdentityStub(CLIENT_ID) as stub:
        yield stub


@pytest.fixture
def identity(_shared_identity: ManagedIdentityStub) -> ManagedIdentityStub:
    """One server for the module, counters reset for each test."""
    _shared_identity.reset()
    return _shared_identity


def test_thousand_concurrent_sends_fetch_one_managed_identity_token(identity: ManagedIdentityStub) -> None:
    identity.latency = 0.2
    creds = msi_credentials(identity.environment())
    results = run_concurrently(1000, lambda: creds.authorization(SERVICE_URL, trusted=True))
    assert len(set(results)) == 1 and isinstance(results[0], str) and results[0].startswith("Bearer ")
    assert identity.is_valid(results[0].removeprefix("Bearer "), BOT_RESOURCE)
    assert (identity.fetches, identity.requests) == (1, 1)
    assert identity.issued_for == [(CLIENT_ID, BOT_RESOURCE)]


def test_managed_identity_token_refreshed_five_minutes_before_expiry(identity: ManagedIdentityStub) -> None:
    clock = FakeClock()
    creds = msi_credentials(identity.environment(), clock=clock)
    first = creds.authorization(SERVICE_URL, trusted=True)
    expires_on = clock.now + identity.expires_in
    clock.now = expires_on - 302  # `expires_on` is whole seconds: stay clear of the rounding
    assert creds.authorization(SERVICE_URL, trusted=True) == first
    assert identity.fetches == 1
    clock.now = expires_on - 298
    results = run_concurrently(100, lambda: creds.authorization(SERVICE_URL, trusted=True))
    assert len(set(results)) == 1 and results[0] != first
    assert identity.fetches == 2


def test_managed_identity_token_is_accepted_by_the_connector(identity: ManagedIdentityStub) -> None:
    with ConnectorStub(token_check=identity.is_valid) as connector:
        header = msi_credentials(identity.environment()).authorization(connector.url, trusted=True)
        response = requests.post(f"{connector.url}/v3/conversations/c1/activities", json={"type": "message"},
                                 headers={"Authorization": header}, timeout=(3.05, 10))
        assert response.status_code == 200


def test_managed_identity_invalidate_after_a_connector_401_fetches_a_new_token(identity: ManagedIdentityStub) -> None:
    creds = msi_credentials(identity.environment())
    first = creds.authorization(SERVICE_URL, trusted=True)
    identity.expire_all()
    creds.invalidate(first)
    second = creds.authorization(SERVICE_URL, trusted=True)
    assert second != first and identity.is_valid(second.removeprefix("Bearer "))
    assert identity.fetches == 2


def test_identity_not_assigned_to_the_app_says_so(identity: ManagedIdentityStub) -> None:
    other = "0a0a0a0a-0000-4000-8000-000000000000"
    with pytest.raises(errors.ConfigError) as caught:
        msi_credentials(identity.environment(), MicrosoftAppId=other).authorization(SERVICE_URL, trusted=True)
    message = caught.value.message
    assert "no identity with client id " + other in message and "assigned to the Function App" in message
    assert "MicrosoftAppId" in message
    assert identity.header not in message


def test_no_identity_endpoint_is_a_config_error_and_nothing_is_fetched(identity: ManagedIdentityStub) -> None:
    with pytest.raises(errors.ConfigError, match="IDENTITY_ENDPOINT/IDENTITY_HEADER are not set"):
        msi_credentials({}).authorization(SERVICE_URL, trusted=True)
    assert identity.requests == 0


def test_refused_identity_header_is_a_config_error(identity: ManagedIdentityStub) -> None:
    environ = {**identity.environment(), "IDENTITY_HEADER": "not-the-header"}
    with pytest.raises(errors.ConfigError, match="HTTP 401: it refused IDENTITY_HEADER") as caught:
        msi_credentials(environ).authorization(SERVICE_URL, trusted=True)
    assert "not-the-header" not in str(caught.value)


def test_unknown_resource_names_the_scope_setting(identity: ManagedIdentityStub) -> None:
    with pytest.raises(errors.ConfigError, match=r"resource https://api\.example\.test.*ToChannelFromBotOAuthScope"):
        msi_credentials(identity.environment(), ToChannelFromBotOAuthScope="https://api.example.test/.default") \
            .authorization(SERVICE_URL, trusted=True)


class Canned:
    """An identity endpoint that answers whatever the test sets."""

    def __init__(self) -> None:
        self.response = StubResponse(500, None)
        self.server = StubServer(lambda request: self.response)

    def environment(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": f"{self.server.url}/msi/token", "IDENTITY_HEADER": "h"}


@pytest.fixture(scope="module")
def canned() -> Iterator[Canned]:
    c = Canned()
    c.server.start()
    yield c
    c.server.stop()


@pytest.mark.parametrize(("status", "body"), [
    (500, {"statusCode": 500, "message": "Internal error"}),
    (503, "unavailable"),
    (200, {"token_type": "Bearer"}),
    (200, {"access_token": "x", "expires_on": "soon"}),
    (200, {"access_token": "x", "expires_on": "1000"}),  # already expired
])
def test_managed_identity_endpoint_failures_are_upstream(canned: Canned, status: int, body: Any) -> None:
    canned.response = StubResponse(status, body)
    with pytest.raises(errors.Upstream, match="managed-identity endpoint"):
        msi_credentials(canned.environment()).authorization(SERVICE_URL, trusted=True)


def test_unreachable_identity_endpoint_is_upstream() -> None:
    environ = {"IDENTITY_ENDPOINT": "http://127.0.0.1:9/msi/token", "IDENTITY_HEADER": "h"}
    with pytest.raises(errors.Upstream, match="managed-identity endpoint unreachable"):
        msi_credentials(environ).authorization(SERVICE_URL, trusted=True)


def test_failed_identity_fetch_is_shared_by_concurrent_callers(identity: ManagedIdentityStub) -> None:
    identity.latency = 0.2
    creds = msi_credentials(identity.environment(), MicrosoftAppId="0a0a0a0a-0000-4000-8000-000000000000")
    results = run_concurrently(50, lambda: creds.authorization(SERVICE_URL, trusted=True))
    assert all(isinstance(r, errors.ConfigError) for r in results)
    assert identity.requests == 1


def test_identity_header_and_token_never_logged(identity: ManagedIdentityStub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    header = msi_credentials(identity.environment()).authorization(SERVICE_URL, trusted=True)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "managed-identity endpoint" in logged
    assert identity.header not in logged and header.removeprefix("Bearer ") not in logged


class RecordingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.calls.append((method, url, kwargs))
        return super().request(method, url, *args, **kwargs)


def test_managed_identity_request_asks_for_the_bot_resource_as_the_identity(identity: ManagedIdentityStub) -> None:
    session = RecordingSession()
    msi_credentials(identity.environment(), session=session).authorization(SERVICE_URL, trusted=True)
    [(method, url, kwargs)] = session.calls
    assert (method, url) == ("GET", identity.endpoint)
    assert kwargs["params"] == {"resource": "https://api.botframework.com", "api-version": "2019-08-01",
                                "client_id": CLIENT_ID}
    assert kwargs["headers"] == {"X-IDENTITY-HEADER": identity.header}
    connect, read = kwargs["timeout"]
    assert 0 < connect <= 10 and 0 < read <= 30


def test_user_assigned_msi_refuses_a_leftover_password() -> None:
    with pytest.raises(errors.ConfigError, match="remove MicrosoftAppPassword"):
        load_settings({"MicrosoftAppId": CLIENT_ID, "MicrosoftAppType": "UserAssignedMSI",
                       "MicrosoftAppPassword": "an-old-secret"})


def test_user_assigned_msi_bot_accepts_its_tenant_like_a_single_tenant_bot() -> None:
    with OpenIdStub(CLIENT_ID) as stub:
        settings = load_settings(stub.settings_env(CLIENT_ID, MicrosoftAppType="UserAssignedMSI",
                                                   MicrosoftAppTenantId=TENANT))
        token = stub.issue_emulator_token(CLIENT_ID, TENANT, "2.0")
        activity = Activity.from_json({"type": "message", "id": "a1", "channelId": "emulator", "serviceUrl": SERVICE_URL,
                                       "conversation": {"id": "c1"}, "from": {"id": "u1"}, "recipient": {"id": "b1"}})
        assert InboundAuthenticator(settings).authenticate(f"Bearer {token}", activity)["tid"] == TENANT
