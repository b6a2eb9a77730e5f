"""Inbound auth: a corpus of forged and good requests, key caching and rotation, against the OpenID stub."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_code.plumbing import errors
from shared_code.plumbing.settings import load_settings
from shared_code.protocol.activity import Activity
from shared_code.protocol.inbound_auth import KEY_REFRESH_SECONDS, UNKNOWN_KID_REFETCH_SECONDS, InboundAuthenticator
from stubs.openid import OpenIdStub, StubKey
from tests.support.inbound_auth_cases import (
    APP_ID,
    BAD,
    GOOD,
    SERVICE_URL,
    Case,
    activity_json,
    channel_request,
    make_stub,
)


@pytest.fixture(scope="module")
def stub() -> Iterator[OpenIdStub]:
    s = make_stub()
    yield s
    s.stop()


def authenticator(stub: OpenIdStub, clock: Callable[[], float] | None = None, **env: str) -> InboundAuthenticator:
    settings = load_settings(stub.settings_env(APP_ID, **env))
    return InboundAuthenticator(settings, clock=clock) if clock else InboundAuthenticator(settings)


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.name)
def test_bad_request_is_unauthorized_without_echoing_the_token(stub: OpenIdStub, case: Case) -> None:
    header, body = case.make(stub)
    with pytest.raises(errors.Unauthorized) as caught:
        authenticator(stub).authenticate(header, Activity.from_json(body))
    token = (header or "").partition(" ")[2]
    assert caught.value.message
    assert not token or (token not in str(caught.value) and token[-20:] not in str(caught.value))


@pytest.mark.parametrize("case", GOOD, ids=lambda c: c.name)
def test_good_request_returns_its_claims(stub: OpenIdStub, case: Case) -> None:
    header, body = case.make(stub)
    claims = authenticator(stub).authenticate(header, Activity.from_json(body))
    assert claims["aud"] == APP_ID
    assert claims["iss"]


def test_corpus_is_large_enough() -> None:
    assert len(BAD) >= 25 and len({c.name for c in BAD + GOOD}) == len(BAD) + len(GOOD)


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_single_tenant_issuer_accepted_when_configured(stub: OpenIdStub, version: str) -> None:
    tenant = "11111111-2222-3333-4444-555555555555"
    token = stub.issue_emulator_token(APP_ID, tenant, version)
    auth = authenticator(stub, MicrosoftAppType="SingleTenant", MicrosoftAppTenantId=tenant)
    assert auth.authenticate(f"Bearer {token}", Activity.from_json(activity_json("emulator")))["tid"] == tenant


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_single_tenant_issuer_rejected_for_multi_tenant_bot(stub: OpenIdStub, version: str) -> None:
    tenant = "11111111-2222-3333-4444-555555555555"
    token = stub.issue_emulator_token(APP_ID, tenant, version)
    with pytest.raises(errors.Unauthorized, match="issuer"):
        authenticator(stub, MicrosoftAppTenantId=tenant).authenticate(
            f"Bearer {token}", Activity.from_json(activity_json("emulator")))


def test_single_tenant_bot_rejects_another_tenant(stub: OpenIdStub) -> None:
    token = stub.issue_emulator_token(APP_ID, "99999999-2222-3333-4444-555555555555", "2.0")
    auth = authenticator(stub, MicrosoftAppType="SingleTenant", MicrosoftAppTenantId="11111111-2222-3333-4444-555555555555")
    with pytest.raises(errors.Unauthorized):
        auth.authenticate(f"Bearer {token}", Activity.from_json(activity_json("emulator")))


def test_single_tenant_bot_still_accepts_channel_tokens(stub: OpenIdStub) -> None:
    auth = authenticator(stub, MicrosoftAppType="SingleTenant", MicrosoftAppTenantId="11111111-2222-3333-4444-555555555555")
    header, body = channel_request()(stub)
    assert auth.authenticate(header, Activity.from_json(body))["serviceurl"] == SERVICE_URL


def test_local_mode_fails_closed_without_fetching(stub: OpenIdStub) -> None:
    before = stub.channel_metadata_fetches + stub.emulator_metadata_fetches
    auth = InboundAuthenticator(load_settings(stub.settings_env("")))
    header, body = channel_request()(stub)
    with pytest.raises(errors.Unauthorized, match="local mode"):
        auth.authenticate(header, Activity.from_json(body))
    assert stub.channel_metadata_fetches + stub.emulator_metadata_fetches == before


# --- key caching and rotation: a fresh stub each, so fetch counts are exact ---

@pytest.fixture
def fresh_stub() -> Iterator[OpenIdStub]:
    with OpenIdStub(APP_ID) as s:
        yield s


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _check(auth: InboundAuthenticator, stub: OpenIdStub, **kw: Any) -> dict[str, Any]:
    return auth.authenticate("Bearer " + stub.issue_channel_token(APP_ID, SERVICE_URL, **kw),
                             Activity.from_json(activity_json()))


def test_keys_fetched_once_for_a_thousand_requests(fresh_stub: OpenIdStub) -> None:
    auth = authenticator(fresh_stub)
    header, body = channel_request()(fresh_stub)
    activity = Activity.from_json(body)
    for _ in range(1000):
        auth.authenticate(header, activity)
    assert (fresh_stub.channel_metadata_fetches, fresh_stub.channel_jwks_fetches) == (1, 1)
    assert fresh_stub.emulator_jwks_fetches == 0


def test_rotated_key_accepted_by_the_same_authenticator_with_one_more_fetch(fresh_stub: OpenIdStub) -> None:
    auth = authenticator(fresh_stub)
    old_token = fresh_stub.issue_channel_token(APP_ID, SERVICE_URL)
    activity = Activity.from_json(activity_json())
    for _ in range(1000):
        auth.authenticate(f"Bearer {old_token}", activity)
    fresh_stub.rotate_keys("channel")
    new_header = "Bearer " + fresh_stub.issue_channel_token(APP_ID, SERVICE_URL)
    for _ in range(1000):
        auth.authenticate(new_header, activity)
    assert fresh_stub.channel_jwks_fetches == 2
    with pytest.raises(errors.Unauthorized, match="unknown signing key"):
        auth.authenticate(f"Bearer {old_token}", activity)  # the old key is gone
    assert fresh_stub.channel_jwks_fetches == 2  # and asking again was rate-limited


def test_random_kids_refetch_at_most_once_per_interval(fresh_stub: OpenIdStub) -> None:
    fresh_stub_now = time.time()
    clock = FakeClock(fresh_stub_now)
    auth = authenticator(fresh_stub, clock=clock)
    _check(auth, fresh_stub)
    rogue = OpenIdStub.unpublished_key().private_key
    for i in range(200):
        with pytest.raises(errors.Unauthorized):
            _check(auth, fresh_stub, key=StubKey(f"random-kid-{i}", rogue, None))
    assert fresh_stub.channel_jwks_fetches == 2  # the first fetch plus one for all the unknown kids
    clock.now = fresh_stub_now + UNKNOWN_KID_REFETCH_SECONDS
    new_kid = fresh_stub.rotate_keys("channel")
    assert _check(auth, fresh_stub, kid=new_kid)  # once the interval passed, a new kid is fetched again
    assert fresh_stub.channel_jwks_fetches == 3


def test_keys_refreshed_after_a_day(fresh_stub: OpenIdStub) -> None:
    start = time.time()
    clock = FakeClock(start)
    auth = authenticator(fresh_stub, clock=clock)
    _check(auth, fresh_stub, exp_offset=KEY_REFRESH_SECONDS + 3600)
    clock.now = start + KEY_REFRESH_SECONDS + 1
    _check(auth, fresh_stub, exp_offset=KEY_REFRESH_SECONDS + 3600, nbf_offset=0)
    assert fresh_stub.channel_jwks_fetches == 2


def test_stale_keys_kept_when_the_daily_refresh_fails(fresh_stub: OpenIdStub) -> None:
    start = time.time()
    clock = FakeClock(start)
    auth = authenticator(fresh_stub, clock=clock)
    token = fresh_stub.issue_channel_token(APP_ID, SERVICE_URL, exp_offset=KEY_REFRESH_SECONDS + 3600)
    activity = Activity.from_json(activity_json())
    auth.authenticate(f"Bearer {token}", activity)
    fresh_stub.stop()
    clock.now = start + KEY_REFRESH_SECONDS + 1
    assert auth.authenticate(f"Bearer {token}", activity)["aud"] == APP_ID
    assert auth.authenticate(f"Bearer {token}", activity)["aud"] == APP_ID


def test_unreachable_metadata_is_unauthorized() -> None:
    settings = load_settings({"MicrosoftAppId": APP_ID,
                              "ToBotFromChannelOpenIdMetadataUrl": "http://127.0.0.1:9/v1/.well-known/openidconfiguration"})
    with OpenIdStub(APP_ID) as s:
        header, body = channel_request()(s)
    with pytest.raises(errors.Unauthorized, match="signing keys unavailable"):
        InboundAuthenticator(settings).authenticate(header, Activity.from_json(body))


def test_concurrent_first_requests_share_one_fetch(fresh_stub: OpenIdStub) -> None:
    auth = authenticator(fresh_stub)
    header, body = channel_request()(fresh_stub)
    activity = Activity.from_json(body)
    barrier = threading.Barrier(32)
    results: list[Any] = []

    def worker() -> None:
        barrier.wait()
        try:
            results.append(auth.authenticate(header, activity)["aud"])
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [APP_ID] * 32
    assert (fresh_stub.channel_metadata_fetches, fresh_stub.channel_jwks_fetches) == (1, 1)


# --- anything at all in the header: Unauthorized, never another exception ---

@pytest.fixture(scope="module")
def shared_auth(stub: OpenIdStub) -> InboundAuthenticator:
    return authenticator(stub)


_segment = st.one_of(
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/", max_size=40),
    st.sampled_from(["e30", "eyJhbGciOiJSUzI1NiJ9", "eyJhbGciOiJSUzI1NiIsImtpZCI6MX0", "bnVsbA", "WzFd", "MQ", ""]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.one_of(
    st.text(max_size=60),
    st.builds(lambda parts: "Bearer " + ".".join(parts), st.lists(_segment, min_size=1, max_size=4)),
))
def test_arbitrary_header_is_unauthorized_never_a_crash(shared_auth: InboundAuthenticator, header: str) -> None:
    with pytest.raises(errors.Unauthorized):
        shared_auth.authenticate(header, Activity.from_json(activity_json()))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(claims=st.dictionaries(
    st.sampled_from(["exp", "nbf", "iat", "aud", "iss", "serviceurl", "ver", "appid", "azp"]),
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10),
              st.lists(st.text(max_size=5), max_size=2)),
    max_size=5,
))
def test_mangled_claims_never_crash(stub: OpenIdStub, shared_auth: InboundAuthenticator, claims: dict[str, Any]) -> None:
    for token in (stub.issue_channel_token(APP_ID, SERVICE_URL, claims=claims),
                  stub.issue_emulator_token(APP_ID, claims=claims)):
        try:
            shared_auth.authenticate(f"Bearer {token}", Activity.from_json(activity_json("emulator")))
        except errors.Unauthorized:
            pass
