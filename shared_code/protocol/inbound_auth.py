"""Inbound authentication: verify the JWT a Bot Framework channel or the Emulator sends with each activity."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from jwt.algorithms import RSAAlgorithm

from shared_code.plumbing.errors import Unauthorized
from shared_code.plumbing.settings import Settings
from shared_code.protocol.activity import Activity

log = logging.getLogger(__name__)

# Emulator (and other Azure AD issued) tokens. Source: botframework-connector 4.17
# `EmulatorValidation.TO_BOT_FROM_EMULATOR_TOKEN_VALIDATION_PARAMETERS` and the
# "Authentication with the Bot Connector API" page (Emulator → bot section).
EMULATOR_TOKEN_ISSUERS: frozenset[str] = frozenset({
    "https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/",  # Auth v3.1, 1.0 token
    "https://login.microsoftonline.com/d6d49420-f39b-4df7-a1dc-d59a935871db/v2.0",  # Auth v3.1, 2.0 token
    "https://sts.windows.net/f8cdef31-a31e-4b4a-93e4-5f571e91255a/",  # Auth v3.2, 1.0 token
    "https://login.microsoftonline.com/f8cdef31-a31e-4b4a-93e4-5f571e91255a/v2.0",  # Auth v3.2, 2.0 token
    "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",  # Microsoft tenant, 1.0 token only
    "https://sts.windows.net/cab8a31a-1906-4287-a0d8-4eef66b95f6e/",  # US Gov, 1.0 token
    "https://login.microsoftonline.us/cab8a31a-1906-4287-a0d8-4eef66b95f6e/v2.0",  # US Gov, 2.0 token
    "https://login.microsoftonline.us/f8cdef31-a31e-4b4a-93e4-5f571e91255a/",  # US Gov, 1.0 token
    "https://login.microsoftonline.us/f8cdef31-a31e-4b4a-93e4-5f571e91255a/v2.0",  # US Gov, 2.0 token
})
# SingleTenant bots also accept their own tenant's issuers. Source: botframework-connector 4.17
# `AuthenticationConstants.VALID_TOKEN_ISSUER_URL_TEMPLATE_V1/_V2`.
TENANT_ISSUER_TEMPLATES: tuple[str, ...] = (
    "https://sts.windows.net/{tenant}/",
    "https://login.microsoftonline.com/{tenant}/v2.0",
)
# The SDK lists RS256/384/512 but decodes with RS256 only, so RS256 is all a real channel sends.
ALLOWED_ALGORITHMS: tuple[str, ...] = ("RS256",)
CLOCK_SKEW_SECONDS = 300  # the SDK's clock_tolerance: 5 minutes
KEY_REFRESH_SECONDS = 24 * 3600  # keys are refreshed at least daily (PROTOCOL.md)
# An unknown kid forces a refetch at most this often per metadata URL, so random kids from an attacker
# cost at most one fetch per interval; the first unknown kid after a rotation is still served at once.
UNKNOWN_KID_REFETCH_SECONDS = 300
MAX_TOKEN_CHARS = 16 * 1024  # real tokens are ~1-2 KB; refuse to parse megabytes
HTTP_TIMEOUT = (3.05, 10.0)  # (connect, read)


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    public_key: Any
    endorsements: tuple[str, ...] | None  # None: the JWK has no `endorsements` member


@dataclass(frozen=True, slots=True)
class _KeySet:
    keys: dict[str, SigningKey]
    fetched_at: float


class SigningKeyCache:
    """The JWKS behind one OpenID metadata URL: fetched once, shared by threads, refreshed daily or on a new kid.

    Trade-off of the unknown-kid rate limit: a burst of forged kids costs one fetch per interval,
    and a genuine new kid arriving within an interval of such a forged-kid fetch waits at most
    that interval (the providers publish new keys before signing with them, so this is rare).
    """

    def __init__(self, metadata_url: str, session: requests.Session, clock: Callable[[], float]) -> None:
        self.metadata_url = metadata_url
        self._session = session
        self._clock = clock
        self._lock = threading.Lock()
        self._current: _KeySet | None = None
        self._next_scheduled_try = 0.0  # after a failed daily refresh, do not retry on every request
        self._last_unknown_kid_fetch: float | None = None

    def get(self, kid: str) -> SigningKey | None:
        """The key with this kid, or None if the provider does not publish it (after a refetch if allowed)."""
        current = self._current
        if current is not None and not self._stale(current) and kid in current.keys:
            return current.keys[kid]  # fast path: no lock for the common case
        with self._lock:
            current = self._current
            now = self._clock()
            just_fetched = False
            if current is None or (self._stale(current) and now >= self._next_scheduled_try):
                current = self._refresh(keep_stale=current is not None)
                just_fetched = True
            if kid in current.keys:
                return current.keys[kid]
            if just_fetched:  # a fresh fetch already answered: no second one for the same request
                return None
            if self._last_unknown_kid_fetch is None or now - self._last_unknown_kid_fetch >= UNKNOWN_KID_REFETCH_SECONDS:
                self._last_unknown_kid_fetch = now
                current = self._refresh(keep_stale=True)
            return current.keys.get(kid)

    def _stale(self, current: _KeySet) -> bool:
        return self._clock() - current.fetched_at >= KEY_REFRESH_SECONDS

    def _refresh(self, *, keep_stale: bool) -> _KeySet:
        """Fetch metadata then JWKS (caller holds the lock). On failure keep old keys if we have any."""
        try:
            keys = self._fetch()
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            self._next_scheduled_try = self._clock() + UNKNOWN_KID_REFETCH_SECONDS
            if keep_stale and self._current is not None:
                log.warning("signing key refresh from %s failed (%s); keeping the cached keys",
                            self.metadata_url, type(exc).__name__)
                return self._current
            log.error("cannot fetch signing keys from %s: %s", self.metadata_url, type(exc).__name__)
            raise Unauthorized("signing keys unavailable") from exc
        self._current = _KeySet(keys, self._clock())
        log.info("fetched %d signing keys via %s", len(keys), self.metadata_url)
        return self._current

    def _fetch(self) -> dict[str, SigningKey]:
        response = self._session.get(self.metadata_url, timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        jwks_uri = response.json()["jwks_uri"]
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise ValueError("jwks_uri is not a URL")
        response = self._session.get(jwks_uri, timeout=HTTP_TIMEOUT)
        response.raise_for_status()
        keys: dict[str, SigningKey] = {}
        for jwk in response.json()["keys"]:
            key = _parse_jwk(jwk)
            if key is not None:
                keys[key.kid] = key
        return keys


def _parse_jwk(jwk: Any) -> SigningKey | None:
    """One JWKS entry as a SigningKey; entries we cannot use for RS256 are skipped, not fatal."""
    if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or not isinstance(jwk.get("kid"), str):
        return None
    if jwk.get("use", "sig") != "sig":
        return None
    try:
        public_key = RSAAlgorithm.from_jwk(json.dumps(jwk))
    except (jwt.InvalidKeyError, ValueError, TypeError, KeyError):
        log.warning("skipping an unreadable JWK (kid %s)", jwk.get("kid"))
        return None
    endorsements = jwk.get("endorsements")
    if endorsements is not None:
        # A malformed list endorses nothing (fail closed) rather than everything.
        endorsements = tuple(e for e in endorsements if isinstance(e, str)) if isinstance(endorsements, list) else ()
    return SigningKey(jwk["kid"], public_key, endorsements)


class InboundAuthenticator:
    """Checks `Authorization: Bearer <JWT>` on POST /api/messages as PROTOCOL.md describes.

    Build one per process and reuse it: it holds the signing-key caches. In local mode
    (no MicrosoftAppId) there is no audience to check against, so `authenticate` fails
    closed with Unauthorized; callers skip authentication in local mode instead.
    """

    def __init__(self, settings: Settings, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        session = session or requests.Session()
        self._channel_keys = SigningKeyCache(settings.to_bot_from_channel_openid_metadata_url, session, clock)
        self._emulator_keys = SigningKeyCache(settings.to_bot_from_emulator_openid_metadata_url, session, clock)
        issuers = set(EMULATOR_TOKEN_ISSUERS)
        if settings.single_tenant and settings.microsoft_app_tenant_id:
            issuers.update(t.format(tenant=settings.microsoft_app_tenant_id) for t in TENANT_ISSUER_TEMPLATES)
        self._emulator_issuers = frozenset(issuers)

    def authenticate(self, authorization: str | None, activity: Activity) -> dict[str, Any]:
        """The verified claims of the request's token; Unauthorized(reason) on any failure."""
        app_id = self._settings.microsoft_app_id
        if not app_id:
            raise Unauthorized("no MicrosoftAppId configured (local mode): nothing to authenticate against")
        token = _bearer_token(authorization)
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise Unauthorized("malformed token") from exc
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise Unauthorized("signing algorithm not allowed")
        if "crit" in header:
            raise Unauthorized("critical header extensions are not supported")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("token has no key id")
        issuer = unverified.get("iss")
        if issuer == self._settings.to_bot_from_channel_token_issuer:
            cache, from_channel = self._channel_keys, True
        elif isinstance(issuer, str) and issuer in self._emulator_issuers:
            cache, from_channel = self._emulator_keys, False
        else:
            raise Unauthorized("issuer not trusted")
        key = cache.get(kid)
        if key is None:
            raise Unauthorized("unknown signing key")
        if key.endorsements is not None and activity.channel_id not in key.endorsements:
            raise Unauthorized("signing key does not endorse the channel")
        try:
            claims = jwt.decode(token, key.public_key, algorithms=list(ALLOWED_ALGORITHMS), options={
                "verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                "verify_aud": False, "verify_iss": False, "verify_sub": False, "verify_jti": False,
            })
        except jwt.PyJWTError as exc:
            raise Unauthorized("bad signature") from exc
        self._check_times(claims)
        if claims.get("aud") != app_id:
            raise Unauthorized("audience is not this bot")
        if from_channel:
            if claims.get("serviceurl") != activity.service_url:
                raise Unauthorized("serviceurl claim does not match the activity")
        else:
            version = claims.get("ver")
            if version == "1.0":
                caller = claims.get("appid")
            elif version == "2.0":
                caller = claims.get("azp")
            else:
                raise Unauthorized("emulator token needs ver 1.0 or 2.0")
            if caller != app_id:
                raise Unauthorized("emulator token is for another app")
        return claims

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self._clock()
        exp = claims.get("exp")
        if not _is_number(exp):
            raise Unauthorized("token has no valid exp")
        if exp <= now - CLOCK_SKEW_SECONDS:
            raise Unauthorized("token expired")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is None:
                continue
            if not _is_number(value):
                raise Unauthorized(f"token has an invalid {name}")
            if value > now + CLOCK_SKEW_SECONDS:
                raise Unauthorized("token not yet valid")


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("no Authorization header")
    if not isinstance(authorization, str) or len(authorization) > MAX_TOKEN_CHARS:
        raise Unauthorized("malformed Authorization header")
    parts = authorization.split(" ")
    if len(parts) != 2 or parts[0] != "Bearer" or not parts[1]:
        raise Unauthorized("Authorization must be 'Bearer <token>'")
    return parts[1]


def _is_number(value: Any) -> bool:
    # json.loads accepts NaN and Infinity: a NaN exp would never compare as expired.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
