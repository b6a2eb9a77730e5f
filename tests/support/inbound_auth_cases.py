"""Forged and good inbound requests: the corpus the inbound-auth tests and the differential test against the
official SDK both run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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


def channel_request(**kw: Any) -> Callable[[OpenIdStub], tuple[str | None, dict[str, Any]]]:
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
    Case("alg_none", channel_request(alg="none")),
    Case("hs256_keyed_with_public_key_pem", channel_request(alg="HS256")),
    Case("rs384", channel_request(alg="RS384")),
    Case("rs512", channel_request(alg="RS512")),
    Case("ps256", channel_request(alg="PS256")),
    Case("unknown_kid_rogue_key", lambda s: ("Bearer " + s.issue_channel_token(
        APP_ID, SERVICE_URL, key=OpenIdStub.unpublished_key()), activity_json())),
    Case("jku_header_to_rogue_keys", lambda s: ("Bearer " + s.issue_channel_token(
        APP_ID, SERVICE_URL, key=OpenIdStub.unpublished_key(), headers={"jku": "https://evil.example/keys"}),
        activity_json())),
    Case("missing_kid", channel_request(headers={"kid": None})),
    Case("kid_not_a_string", channel_request(headers={"kid": 123})),
    Case("channel_token_signed_by_emulator_key", lambda s: ("Bearer " + s.issue_channel_token(
        APP_ID, SERVICE_URL, kid=s.emulator_kid), activity_json())),
    Case("emulator_token_signed_by_channel_key", lambda s: ("Bearer " + s.issue_emulator_token(
        APP_ID, kid=s.channel_kid), activity_json("emulator"))),
    # --- time ---
    Case("expired_beyond_skew", channel_request(exp_offset=-360, nbf_offset=-3600)),
    Case("nbf_beyond_skew", channel_request(nbf_offset=360)),
    Case("missing_exp", channel_request(claims={"exp": None})),
    Case("exp_as_string", channel_request(claims={"exp": "99999999999"})),
    Case("exp_nan", channel_request(claims={"exp": float("nan")})),
    Case("iat_beyond_skew", _em(claims={"iat": 2_000_000_000_000})),
    # --- audience and issuer ---
    Case("wrong_audience", channel_request(claims={"aud": "https://api.botframework.com"})),
    Case("token_for_another_app", channel_request(claims={"aud": "another-app-id"})),
    Case("missing_audience", channel_request(claims={"aud": None})),
    Case("audience_as_list", channel_request(claims={"aud": [APP_ID]})),
    Case("wrong_issuer", channel_request(claims={"iss": "https://evil.example"})),
    Case("issuer_with_trailing_slash", channel_request(claims={"iss": "https://api.botframework.com/"})),
    Case("missing_issuer", channel_request(claims={"iss": None})),
    # --- channel claims and endorsements ---
    Case("missing_serviceurl", channel_request(claims={"serviceurl": None})),
    Case("serviceurl_mismatch", channel_request(claims={"serviceurl": "https://evil.example/amer/"})),
    Case("serviceurl_without_trailing_slash", channel_request(claims={"serviceurl": SERVICE_URL.rstrip("/")})),
    Case("serviceurl_other_case", channel_request(claims={"serviceurl": SERVICE_URL.upper()})),
    Case("channel_not_endorsed", channel_request(channel_id="facebook")),
    Case("key_endorses_another_channel", channel_request(kid=WEBCHAT_KID)),
    Case("key_with_empty_endorsements", channel_request(kid=EMPTY_KID)),
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
    Case("channel_token", channel_request()),
    Case("channel_token_extra_claims", channel_request(claims={"ver": None, "custom": "x"})),
    Case("expired_within_skew", channel_request(exp_offset=-240, nbf_offset=-3600)),
    Case("nbf_within_skew", channel_request(nbf_offset=240)),
    Case("key_without_endorsements", channel_request(kid=BARE_KID, channel_id="facebook")),
    Case("key_endorsing_this_channel", channel_request(kid=WEBCHAT_KID, channel_id="webchat")),
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
