"""Differential: the inbound corpus through botframework-connector 4.17 (test-only oracle) and through ours."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("botframework.connector")

from botbuilder.schema import Activity as SdkActivity  # noqa: E402
from botframework.connector.auth import (  # noqa: E402
    AuthenticationConstants,
    ChannelValidation,
    JwtTokenValidation,
    SimpleCredentialProvider,
)
from botframework.connector.auth.jwt_token_extractor import JwtTokenExtractor  # noqa: E402

from shared_code.plumbing import errors  # noqa: E402
from shared_code.plumbing.settings import load_settings  # noqa: E402
from shared_code.protocol.activity import Activity  # noqa: E402
from shared_code.protocol.inbound_auth import InboundAuthenticator  # noqa: E402
from stubs.openid import OpenIdStub  # noqa: E402
from tests.support.inbound_auth_cases import APP_ID, BAD, GOOD, Case, make_stub  # noqa: E402

# Every case where we and the SDK decide differently, and why. (ours, sdk): True = accepted.
# The differential test fails on any disagreement not listed here, and on any listed one that went away.
EXPECTED_DIFFERENCES: dict[str, tuple[bool, bool, str]] = {
    "oversized_token": (False, True,
                        "we refuse tokens over 16 KB before parsing (real ones are 1-2 KB); the SDK has no limit"),
    "missing_exp": (False, True,
                    "PyJWT checks exp only when present and the SDK does not require it; PROTOCOL.md: exp required"),
    "exp_as_string": (False, True,
                      "PyJWT int()s a string exp; we require a JSON number (RFC 7519 NumericDate)"),
    "key_with_empty_endorsements": (False, True,
                                    "the Python SDK skips the check when the list is empty (falsy); an empty "
                                    "endorsements list endorses no channel, as the C# SDK decides"),
    "emulator_empty_ver": (False, True,
                           "the SDK treats ver \"\" like 1.0; we accept only \"1.0\" and \"2.0\""),
    "emulator_audience_botframework": (False, True,
                                       "the SDK never checks aud on emulator tokens (only appid/azp; an aud that "
                                       "is neither the app nor api.botframework.com is caught by its skill path); "
                                       "we require aud == MicrosoftAppId, which real Emulator tokens (scope "
                                       "'{appId}/.default') carry"),
}


def _sdk_decision(header: str | None, body: dict[str, Any]) -> bool:
    activity = SdkActivity().deserialize(body)
    try:
        asyncio.run(JwtTokenValidation.authenticate_request(
            activity, header or "", SimpleCredentialProvider(APP_ID, "")))
    except Exception:  # noqa: BLE001 - the SDK rejects with PermissionError, jwt errors, IndexError...
        return False
    return True


def _our_decision(stub: OpenIdStub, header: str | None, body: dict[str, Any]) -> bool:
    auth = InboundAuthenticator(load_settings(stub.settings_env(APP_ID)))
    try:
        auth.authenticate(header, Activity.from_json(body))
    except errors.Unauthorized:
        return False
    return True


@pytest.fixture(scope="module")
def sdk_stub() -> Iterator[OpenIdStub]:
    """One stub; the SDK's class-level metadata URLs and cache pointed at it, restored afterwards."""
    stub = make_stub()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ChannelValidation, "open_id_metadata_endpoint", stub.channel_metadata_url)
        mp.setattr(AuthenticationConstants, "TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL", stub.emulator_metadata_url)
        mp.setattr(JwtTokenExtractor, "metadataCache", {})  # a reused port must not hit another stub's keys
        yield stub
    stub.stop()


@pytest.mark.parametrize("case", BAD + GOOD, ids=lambda c: c.name)
def test_sdk_and_ours_agree_on_accept_or_reject(sdk_stub: OpenIdStub, case: Case) -> None:
    header, body = case.make(sdk_stub)
    ours, sdk = _our_decision(sdk_stub, header, body), _sdk_decision(header, body)
    expected_ours = case in GOOD
    assert ours == expected_ours, f"{case.name}: ours={'accept' if ours else 'reject'}"
    if case.name in EXPECTED_DIFFERENCES:
        want_ours, want_sdk, why = EXPECTED_DIFFERENCES[case.name]
        assert (ours, sdk) == (want_ours, want_sdk), f"{case.name}: the documented difference changed ({why})"
    else:
        assert ours == sdk, f"{case.name}: ours={'accept' if ours else 'reject'}, sdk={'accept' if sdk else 'reject'}"


def test_expected_differences_name_real_cases() -> None:
    names = {c.name for c in BAD + GOOD}
    assert set(EXPECTED_DIFFERENCES) <= names
