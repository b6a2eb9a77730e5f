"""Inbound auth: a corpus of forged and good requests, key caching and rotation, against the OpenID stub."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_code.plumbing import errors
from shared_code.plumbing.settings import load_settings
from shared_code.protocol.activity import Activity
from shared_code.protocol.inbound_auth import KEY_REFRESH_SECONDS, UNKNOWN_KID_REFETCH_SECONDS, InboundAuthenticator
from stubs.openid import EMULATOR_TENANT_V31, EMULATOR_TENANT_V32, MICROSOFT_TENANT, OpenIdStub, StubKey

APP_ID = "test-app-id"
SERVICE_URL = "https://smba.example.test/amer/"
US_GOV_TENANT = "cab8a31a-1906-4287-a0d8-4eef66b95f6e"
BARE_KID = "key-without-endorsements"
EMPTY_KID = "key-with-empty-endorsements"
WEBCHAT_KID = "key-endorsing-webchat-only"


def make_stub() -> OpenIdStub:
    """The stub every corpus test uses: default keys plus three with special endorsements, all published at start."""
    stub = OpenIdStub(APP_ID)
    stub.add_key("channel", endorsements=None, kid=BARE_KID)
    stub.add_key("channel", endorsements=[], kid=EMPTY_KID)
    stub.add_key("channel", endorsements=["webchat"], kid=WEBCHAT_KID)
    return stub.start()


def activity_json(channel_id: str = "msteams", service_url: str = SERVICE_URL) -> dict[str, Any]:
    return {"type": "message", "id": "a1", "channelId": channel_id, "serviceUrl": service_url,
            "conversation": {"id": "c1"}, "from": {"id": "u1"}, "recipient": {"id": "b1"}, "text": "hi"}


@dataclass(frozen=True)
class Case:
    """One request: `make(stub)` returns (Authorization header, activity JSON)."""

    name: str
    make: Callable[[OpenIdStub], tuple[str | None, dict[str, Any]]]


def _ch(**kw: Any) -> Callable[[OpenIdStub], tuple[str | None, dict[str, Any]]]:
    channel_id = kw.pop("channel_id", "msteams")
    return lambda s: ("Bearer " + s.issue_channel_token(APP_ID, SERVICE_URL, **kw), activity_json(channel_id))


def _em(version: str = "1.0", tenant: str = EMULATOR_TENANT_V32, **kw: Any) -> Callable[[OpenIdStub], tuple[str | None, dict[str, Any]]]:
    return lambda s: ("Bearer " + s.issue_emulator_token(APP_ID, tenant, version, **kw), activity_json("emulator"))


def _header(value: Callable[[str], str | None]) -> Callable[[OpenIdStub], tuple[str | None, dict[str, Any]]]:
    """A header built around a valid channel token."""
    return lambda s: (value(s.issue_channel_token(APP_ID, SERVICE_URL)), activity_json())


def _tampered(s: OpenIdStub) -> tuple[str | None, dict[str, Any]]:
    good = s.issue_channel_token(APP_ID, SERVICE_URL).split(".")
    other = s.issue_channel_token(APP_ID, SERVICE_URL, claims={"serviceurl": "https://evil.example/"}).split(".")
    return f"Bearer {good[0]}.{other[1]}.{good[2]}", activity_json()


def _rogue_with_kid(kid_of: Callable[[OpenIdStub], str], **kw: Any) -> Callable[[OpenIdStub], tuple[str | None, dict[str, Any]]]:
    def make(s: OpenIdStub) -> tuple[str | None, dict[str, Any]]:
        rogue = StubKey(kid_of(s), OpenIdStub.unpublished_key().private_key, None)
        return "Bearer " + s.issue_channel_token(APP_ID, SERVICE_URL, key=rogue, **kw), activity_json()
    return make


def _oversized(s: OpenIdStub) -> tuple[str | None, dict[str, Any]]:
    return "Bearer " + s.issue_channel_token(APP_ID, SERVICE_URL, claims={"padding": "x" * 20_000}), activity_json()


BAD: list[Case] = [
    # --- the header ---
    Case("no_header", lambda s: (None, activity_json())),
    Case("empty_header", lambda s: ("", activity_json())),
    Case("wrong_scheme_basic", _header(lambda t: f"Basic {t}")),
    Case("lowercase_scheme", _header(lambda t: f"bearer {t}")),
    Case("three_parts", _header(lambda t: f"Bearer {t} extra")),
    Case("double_space", _header(lambda t: f"Bearer  {t}")),
    Case("scheme_only", lambda s: ("Bearer", activity_json())),
    Case("scheme_and_space", lambda s: ("Bearer ", activity_json())),
    Case("token_without_scheme", _header(lambda t: t)),
    Case("malformed_token", lambda s: ("Bearer not-a-jwt", activity_json())),
    Case("two_segment_token", lambda s: ("Bearer eyJhbGciOiJSUzI1NiJ9.e30", activity_json())),
    Case("empty_json_segments", lambda s: ("Bearer e30.e30.e30", activity_json())),
    Case("oversized_token", _oversized),
    # --- signature and algorithm ---
    Case("tampered_payload", _tampered),
    Case("signature_stripped", _header(lambda t: t.rsplit(".", 1)[0] + ".")),
    Case("published_kid_signed_by_rogue_key", _rogue_with_kid(lambda s: s.channel_kid)),
    Case("alg_none", _ch(alg="none")),
    Case("hs256_keyed_with_public_key_pem", _ch(alg="HS256")),
    Case("rs384", _ch(alg="RS384")),
    Case("rs512", _ch(alg="RS512")),
    Case("ps256", _ch(alg="PS256")),
    Case("unknown_kid_rogue_key", lambda s: ("Bearer " + s.issue_channel_token(
        APP_ID, SERVICE_URL, key=OpenIdStub.unpublished_key()), activity_json())),
    Case("jku_header_to_rogue_keys", lambda s: ("Bearer " + s.issue_channel_token(
        APP_ID, SERVICE_URL, key=OpenIdStub.unpublished_key(), headers={"jku": "https://evil.example/keys"}),
        activity_json())),
    Case("missing_kid", _ch(headers={"kid": None})),
    Case("kid_not_a_string", _ch(headers={"kid": 123})),
    Case("channel_token_signed_by_emulator_key", lambda s: ("Bearer " + s.issue_channel_token(
        APP_ID, SERVICE_URL, kid=s.emulator_kid), activity_json())),
    Case("emulator_token_signed_by_channel_key", lambda s: ("Bearer " + s.issue_emulator_token(
        APP_ID, kid=s.channel_kid), activity_json("emulator"))),
    # --- time ---
    Case("expired_beyond_skew", _ch(exp_offset=-360, nbf_offset=-3600)),
    Case("nbf_beyond_skew", _ch(nbf_offset=360)),
    Case("missing_exp", _ch(claims={"exp": None})),
    Case("exp_as_string", _ch(claims={"exp": "99999999999"})),
    Case("exp_nan", _ch(claims={"exp": float("nan")})),
    Case("iat_beyond_skew", _em(claims={"iat": 2_000_000_000_000})),
    # --- audience and issuer ---
    Case("wrong_audience", _ch(claims={"aud": "https://api.botframework.com"})),
    Case("token_for_another_app", _ch(claims={"aud": "another-app-id"})),
    Case("missing_audience", _ch(claims={"aud": None})),
    Case("audience_as_list", _ch(claims={"aud": [APP_ID]})),
    Case("wrong_issuer", _ch(claims={"iss": "https://evil.example"})),
    Case("issuer_with_trailing_slash", _ch(claims={"iss": "https://api.botframework.com/"})),
    Case("missing_issuer", _ch(claims={"iss": None})),
    # --- channel claims and endorsements ---
    Case("missing_serviceurl", _ch(claims={"serviceurl": None})),
    Case("serviceurl_mismatch", _ch(claims={"serviceurl": "https://evil.example/amer/"})),
    Case("serviceurl_without_trailing_slash", _ch(claims={"serviceurl": SERVICE_URL.rstrip("/")})),
    Case("serviceurl_other_case", _ch(claims={"serviceurl": SERVICE_URL.upper()})),
    Case("channel_not_endorsed", _ch(channel_id="facebook")),
    Case("key_endorses_another_channel", _ch(kid=WEBCHAT_KID)),
    Case("key_with_empty_endorsements", _ch(kid=EMPTY_KID)),
    # --- emulator ---
    Case("emulator_unknown_tenant", _em(tenant="00000000-0000-0000-0000-000000000000")),
    Case("emulator_v2_microsoft_tenant", _em("2.0", MICROSOFT_TENANT)),
    Case("emulator_v1_wrong_appid", _em(claims={"appid": "another-app-id"})),
    Case("emulator_v2_wrong_azp", _em("2.0", claims={"azp": "another-app-id"})),
    Case("emulator_v1_missing_appid", _em(claims={"appid": None})),
    Case("emulator_v2_missing_azp", _em("2.0", claims={"azp": None})),
    Case("emulator_missing_ver", _em(claims={"ver": None})),
    Case("emulator_unknown_ver", _em(claims={"ver": "3.0"})),
    Case("emulator_empty_ver", _em(claims={"ver": ""})),
    Case("emulator_ver_as_number", _em(claims={"ver": 1.0})),
    Case("emulator_token_for_another_app", _em(claims={"aud": "another-app-id", "appid": "another-app-id"})),
    Case("emulator_audience_other_app", _em(claims={"aud": "another-app-id"})),
    Case("emulator_audience_botframework", _em(claims={"aud": "https://api.botframework.com"})),
    Case("emulator_expired", _em(exp_offset=-360, nbf_offset=-3600)),
    Case("emulator_rs512", _em(alg="RS512")),
]

GOOD: list[Case] = [
    Case("channel_token", _ch()),
    Case("channel_token_extra_claims", _ch(claims={"ver": None, "custom": "x"})),
    Case("expired_within_skew", _ch(exp_offset=-240, nbf_offset=-3600)),
    Case("nbf_within_skew", _ch(nbf_offset=240)),
    Case("key_without_endorsements", _ch(kid=BARE_KID, channel_id="facebook")),
    Case("key_endorsing_this_channel", _ch(kid=WEBCHAT_KID, channel_id="webchat")),
    Case("emulator_v1_auth_v32", _em("1.0", EMULATOR_TENANT_V32)),
    Case("emulator_v2_auth_v32", _em("2.0", EMULATOR_TENANT_V32)),
    Case("emulator_v1_auth_v31", _em("1.0", EMULATOR_TENANT_V31)),
    Case("emulator_v2_auth_v31", _em("2.0", EMULATOR_TENANT_V31)),
    Case("emulator_v1_microsoft_tenant", _em("1.0", MICROSOFT_TENANT)),
    Case("emulator_v1_us_gov", _em("1.0", US_GOV_TENANT)),
    Case("emulator_v2_us_gov", _em("2.0", US_GOV_TENANT, claims={
        "iss": f"https://login.microsoftonline.us/{US_GOV_TENANT}/v2.0"})),
    Case("emulator_within_skew", _em(exp_offset=-240, nbf_offset=240)),
]


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
    header, body = _ch()(stub)
    assert auth.authenticate(header, Activity.from_json(body))["serviceurl"] == SERVICE_URL


def test_local_mode_fails_closed_without_fetching(stub: OpenIdStub) -> None:
    before = stub.channel_metadata_fetches + stub.emulator_metadata_fetches
    auth = InboundAuthenticator(load_settings(stub.settings_env("")))
    header, body = _ch()(stub)
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
    header, body = _ch()(fresh_stub)
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
        header, body = _ch()(s)
    with pytest.raises(errors.Unauthorized, match="signing keys unavailable"):
        InboundAuthenticator(settings).authenticate(header, Activity.from_json(body))


def test_concurrent_first_requests_share_one_fetch(fresh_stub: OpenIdStub) -> None:
    auth = authenticator(fresh_stub)
    header, body = _ch()(fresh_stub)
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
