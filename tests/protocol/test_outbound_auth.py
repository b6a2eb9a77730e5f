"""Outbound credentials: one shared token fetch, refresh before expiry, and the token only for trusted serviceUrls."""

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
from shared_code.protocol.outbound_auth import OutboundCredentials, normalize_service_url
from stubs.connector import ConnectorStub
from stubs.server import StubResponse, StubServer
from stubs.token import TokenStub

APP_ID = "test-app-id"
SECRET = "test-app-password"


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def credentials(login_url: str, *, clock: Callable[[], float] | None = None,
                session: requests.Session | None = None, **env: str) -> OutboundCredentials:
    values = {"MicrosoftAppId": APP_ID, "MicrosoftAppPassword": SECRET, "ToChannelFromBotLoginUrl": login_url}
    values.update(env)
    return OutboundCredentials(load_settings(values), session=session, clock=clock or time.time)


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
def _shared_token_stub() -> Iterator[TokenStub]:
    with TokenStub(APP_ID, SECRET) as stub:
        yield stub


@pytest.fixture
def token_stub(_shared_token_stub: TokenStub) -> TokenStub:
    """One server for the module (a stub server takes ~0.5 s to stop), counters reset for each test."""
    stub = _shared_token_stub
    stub.fetches = stub.requests = 0
    stub.tenants.clear()
    stub.latency = 0.0
    return stub


@pytest.fixture
def slow_token_stub(token_stub: TokenStub) -> TokenStub:
    token_stub.latency = 0.2
    return token_stub


class Canned:
    """A token endpoint that answers whatever the test sets."""

    def __init__(self) -> None:
        self.response = StubResponse(500, None)
        self.server = StubServer(lambda request: self.response)


@pytest.fixture(scope="module")
def canned() -> Iterator[Canned]:
    c = Canned()
    c.server.start()
    yield c
    c.server.stop()


def test_thousand_concurrent_calls_fetch_one_token(slow_token_stub: TokenStub) -> None:
    creds = credentials(slow_token_stub.login_url())
    results = run_concurrently(1000, lambda: creds.authorization("https://smba.example.test/", trusted=True))
    assert len(set(results)) == 1 and results[0].startswith("Bearer ")
    assert slow_token_stub.is_valid(results[0].removeprefix("Bearer "))
    assert (slow_token_stub.fetches, slow_token_stub.requests) == (1, 1)


def test_token_reused_until_five_minutes_before_expiry_then_refreshed_once(token_stub: TokenStub) -> None:
    clock = FakeClock()
    start = clock.now
    creds = credentials(token_stub.login_url(), clock=clock)
    first = creds.authorization("https://smba.example.test/", trusted=True)
    clock.now = start + 3600 - 301
    assert creds.authorization("https://smba.example.test/", trusted=True) == first
    assert token_stub.fetches == 1
    clock.now = start + 3600 - 299
    results = run_concurrently(100, lambda: creds.authorization("https://smba.example.test/", trusted=True))
    assert len(set(results)) == 1 and results[0] != first
    assert token_stub.fetches == 2


def test_invalidate_after_a_connector_401_fetches_a_new_token(token_stub: TokenStub) -> None:
    creds = credentials(token_stub.login_url())
    first = creds.authorization("https://smba.example.test/", trusted=True)
    token_stub.expire_all()
    creds.invalidate()
    second = creds.authorization("https://smba.example.test/", trusted=True)
    assert second != first and token_stub.is_valid(second.removeprefix("Bearer "))
    assert token_stub.fetches == 2


def test_untrusted_service_url_raises_and_nothing_is_sent(token_stub: TokenStub) -> None:
    with ConnectorStub(token_check=token_stub.is_valid) as connector:
        creds = credentials(token_stub.login_url(), TrustedServiceUrls="https://smba.example.test/amer/")
        with pytest.raises(errors.UntrustedServiceUrl):
            creds.authorization(connector.url, trusted=False)
        assert token_stub.requests == 0
        assert connector.requests == [] and connector.authorization_headers_seen == 0


def test_service_url_trusted_by_setting_gets_a_working_token(token_stub: TokenStub) -> None:
    with ConnectorStub(token_check=token_stub.is_valid) as connector:
        creds = credentials(token_stub.login_url(), TrustedServiceUrls=f"https://other.example/, {connector.url}/amer/")
        header = creds.authorization(f"{connector.url}/amer", trusted=False)
        assert header is not None
        response = requests.post(f"{connector.url}/v3/conversations/c1/activities", json={"type": "message"},
                                 headers={"Authorization": header}, timeout=(3.05, 10))
        assert response.status_code == 200
        assert connector.requests[0][2] is True


def test_authenticated_service_url_needs_no_setting(token_stub: TokenStub) -> None:
    creds = credentials(token_stub.login_url())
    assert creds.authorization("https://smba.example.test/emea/", trusted=True)


@pytest.mark.parametrize(("candidate", "listed", "trusted"), [
    ("https://smba.example.test/amer/", "https://smba.example.test/amer/", True),
    ("https://smba.example.test/amer", "https://smba.example.test/amer/", True),
    ("https://SMBA.Example.TEST:443/amer/", "https://smba.example.test/amer", True),
    ("http://localhost:3978/", "http://localhost:3978", True),
    ("https://smba.example.test/emea/", "https://smba.example.test/amer/", False),
    ("https://smba.example.test/amer/x", "https://smba.example.test/amer/", False),
    ("http://smba.example.test/amer/", "https://smba.example.test/amer/", False),
    ("https://smba.example.test:8443/amer/", "https://smba.example.test/amer/", False),
    ("https://smba.example.test.evil.example/amer/", "https://smba.example.test/amer/", False),
    ("https://user@smba.example.test/amer/", "https://smba.example.test/amer/", False),
    ("ftp://smba.example.test/amer/", "https://smba.example.test/amer/", False),
    ("https://smba.example.test:99999/amer/", "https://smba.example.test/amer/", False),
    ("not a url", "https://smba.example.test/amer/", False),
])
def test_trusted_service_url_matching(candidate: str, listed: str, trusted: bool) -> None:
    creds = credentials("http://127.0.0.1:9/botframework.com", TrustedServiceUrls=listed)
    assert creds.is_trusted(candidate) is trusted


def test_normalize_service_url_drops_default_port_and_trailing_slash() -> None:
    assert normalize_service_url("HTTPS://Host.Example:443/a/b/") == ("https", "host.example", 443, "/a/b")


def test_local_mode_returns_none_and_fetches_nothing(token_stub: TokenStub) -> None:
    creds = OutboundCredentials(load_settings({"MicrosoftAppId": "", "ToChannelFromBotLoginUrl": token_stub.login_url()}))
    assert creds.authorization("https://anything.example/", trusted=False) is None
    assert creds.authorization("https://anything.example/", trusted=True) is None
    assert token_stub.requests == 0


def test_bad_secret_names_the_setting_and_never_the_secret(token_stub: TokenStub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bad_secret = "not-the-password-7f3a9c"
    creds = credentials(token_stub.login_url(), MicrosoftAppPassword=bad_secret)
    with pytest.raises(errors.ConfigError) as caught:
        creds.authorization("https://smba.example.test/", trusted=True)
    assert "MicrosoftAppPassword" in caught.value.message and "invalid_client" in caught.value.message
    assert bad_secret not in str(caught.value) and bad_secret not in repr(caught.value)
    assert all(bad_secret not in record.getMessage() for record in caplog.records)


def test_secret_and_token_never_logged(token_stub: TokenStub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    creds = credentials(token_stub.login_url())
    header = creds.authorization("https://smba.example.test/", trusted=True)
    assert header
    creds.invalidate()
    creds.authorization("https://smba.example.test/", trusted=True)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records  # the fetch is logged...
    assert SECRET not in logged and header.removeprefix("Bearer ") not in logged  # ...without secrets


def test_failed_fetch_is_shared_by_concurrent_callers(slow_token_stub: TokenStub) -> None:
    creds = credentials(slow_token_stub.login_url(), MicrosoftAppPassword="an-old-secret")
    results = run_concurrently(50, lambda: creds.authorization("https://smba.example.test/", trusted=True))
    assert all(isinstance(r, errors.ConfigError) for r in results)
    assert slow_token_stub.requests == 1
    with pytest.raises(errors.ConfigError):  # a later call tries again
        creds.authorization("https://smba.example.test/", trusted=True)
    assert slow_token_stub.requests == 2


@pytest.mark.parametrize(("status", "body", "error", "setting"), [
    (503, {"error": "temporarily_unavailable"}, errors.Upstream, "ToChannelFromBotLoginUrl"),
    (500, "oops", errors.Upstream, "ToChannelFromBotLoginUrl"),
    (200, {"token_type": "Bearer"}, errors.Upstream, "ToChannelFromBotLoginUrl"),
    (400, {"error": "invalid_scope"}, errors.ConfigError, "ToChannelFromBotOAuthScope"),
    (400, {"error": "unauthorized_client", "error_description": "AADSTS700016: app not found"},
     errors.ConfigError, "MicrosoftAppId"),
    (400, {"error": "invalid_request", "error_description": "AADSTS90002: Tenant 'x' not found."},
     errors.ConfigError, "MicrosoftAppTenantId"),
])
def test_token_endpoint_failures_name_the_setting_to_check(canned: Canned, status: int, body: Any,
                                                          error: type[Exception], setting: str) -> None:
    canned.response = StubResponse(status, body)
    with pytest.raises(error) as caught:
        credentials(f"{canned.server.url}/botframework.com").authorization("https://smba.example.test/", trusted=True)
    assert setting in str(caught.value) and SECRET not in str(caught.value)


def test_unreachable_token_endpoint_is_upstream() -> None:
    with pytest.raises(errors.Upstream, match="ToChannelFromBotLoginUrl"):
        credentials("http://127.0.0.1:9/botframework.com").authorization("https://smba.example.test/", trusted=True)


class RecordingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.calls.append((url, kwargs))
        return super().request(method, url, *args, **kwargs)


def test_token_request_form_and_timeout(token_stub: TokenStub) -> None:
    session = RecordingSession()
    credentials(token_stub.login_url(), session=session).authorization("https://smba.example.test/", trusted=True)
    url, kwargs = session.calls[0]
    assert url == f"{token_stub.login_url()}/oauth2/v2.0/token"
    assert kwargs["data"] == {"grant_type": "client_credentials", "client_id": APP_ID, "client_secret": SECRET,
                              "scope": "https://api.botframework.com/.default"}
    connect, read = kwargs["timeout"]
    assert 0 < connect <= 10 and 0 < read <= 30


def test_single_tenant_uses_the_tenant_login_url() -> None:
    creds = OutboundCredentials(load_settings({"MicrosoftAppId": APP_ID, "MicrosoftAppType": "SingleTenant",
                                               "MicrosoftAppTenantId": "contoso-tenant-id"}))
    assert creds.token_url == "https://login.microsoftonline.com/contoso-tenant-id/oauth2/v2.0/token"


def test_multi_tenant_uses_the_botframework_login_url() -> None:
    creds = OutboundCredentials(load_settings({"MicrosoftAppId": APP_ID, "MicrosoftAppTenantId": "contoso"}))
    assert creds.token_url == "https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token"


def test_single_tenant_with_an_explicit_login_url_keeps_it(token_stub: TokenStub) -> None:
    creds = credentials(token_stub.login_url("contoso-tenant-id"), MicrosoftAppType="SingleTenant",
                        MicrosoftAppTenantId="contoso-tenant-id")
    assert creds.authorization("https://smba.example.test/", trusted=True)
    assert token_stub.tenants == ["contoso-tenant-id"]


def test_late_invalidate_keeps_a_fresher_token(token_stub: TokenStub) -> None:
    creds = credentials(token_stub.login_url())
    old = creds.authorization("https://smba.example.test/", trusted=True)
    creds.invalidate(old)  # the first 401 drops the cached token
    new = creds.authorization("https://smba.example.test/", trusted=True)
    creds.invalidate(old)  # a send that used the old token reports its 401 late
    assert creds.authorization("https://smba.example.test/", trusted=True) == new
    assert token_stub.fetches == 2
