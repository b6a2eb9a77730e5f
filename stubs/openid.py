"""The Bot Framework and Emulator OpenID metadata + JWKS endpoints, and a token issuer signing with their keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm, get_default_algorithms

from stubs.server import StubRequest, StubResponse, StubServer

CHANNEL_ISSUER = "https://api.botframework.com"
# Emulator tenants as the SDK lists them (botframework-connector 4.17 EmulatorValidation).
EMULATOR_TENANT_V31 = "d6d49420-f39b-4df7-a1dc-d59a935871db"
EMULATOR_TENANT_V32 = "f8cdef31-a31e-4b4a-93e4-5f571e91255a"
MICROSOFT_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
DEFAULT_CHANNELS = ("msteams", "webchat", "directline", "emulator", "slack", "test", "localchat")

CHANNEL_METADATA_PATH = "/v1/.well-known/openidconfiguration"
CHANNEL_JWKS_PATH = "/v1/.well-known/keys"
EMULATOR_METADATA_PATH = "/emulator/v2.0/.well-known/openid-configuration"
EMULATOR_JWKS_PATH = "/emulator/discovery/v2.0/keys"

_REMOVE = object()


def emulator_issuer(tenant: str, version: str) -> str:
    """The iss an Azure AD token of that version has for that tenant."""
    return f"https://sts.windows.net/{tenant}/" if version == "1.0" else f"https://login.microsoftonline.com/{tenant}/v2.0"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class StubKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    endorsements: list[str] | None  # None: the JWK has no endorsements member

    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        data.update(kid=self.kid, use="sig")
        if self.endorsements is not None:
            data["endorsements"] = list(self.endorsements)
        return data

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


class OpenIdStub:
    """Serves channel and emulator OpenID metadata with their JWKS, and issues tokens signed by those keys.

    Counters: `channel_metadata_fetches`, `channel_jwks_fetches`, `emulator_metadata_fetches`,
    `emulator_jwks_fetches` (and `jwks_fetches`, their sum). Keys are 2048-bit RSA made at start.
    """

    def __init__(self, app_id: str = "test-app-id", *, channels: Iterable[str] = DEFAULT_CHANNELS) -> None:
        self.app_id = app_id
        self.channels = list(channels)
        self._lock = threading.Lock()
        self.channel_metadata_fetches = 0
        self.channel_jwks_fetches = 0
        self.emulator_metadata_fetches = 0
        self.emulator_jwks_fetches = 0
        self._keys: dict[str, list[StubKey]] = {"channel": [], "emulator": []}
        self.channel_kid = self.add_key("channel", endorsements=self.channels)
        self.emulator_kid = self.add_key("emulator", endorsements=None)  # Azure AD keys carry no endorsements
        self._server = StubServer(self._handle)

    # --- lifecycle -------------------------------------------------------
    @property
    def url(self) -> str:
        return self._server.url

    @property
    def channel_metadata_url(self) -> str:
        return self.url + CHANNEL_METADATA_PATH

    @property
    def emulator_metadata_url(self) -> str:
        return self.url + EMULATOR_METADATA_PATH

    @property
    def jwks_fetches(self) -> int:
        return self.channel_jwks_fetches + self.emulator_jwks_fetches

    def start(self) -> OpenIdStub:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> OpenIdStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def settings_env(self, app_id: str | None = None, **extra: str) -> dict[str, str]:
        """App settings (Bot Framework names) pointing inbound auth at this stub."""
        env = {
            "MicrosoftAppId": self.app_id if app_id is None else app_id,
            "ToBotFromChannelOpenIdMetadataUrl": self.channel_metadata_url,
            "ToBotFromEmulatorOpenIdMetadataUrl": self.emulator_metadata_url,
            "ToBotFromChannelTokenIssuer": CHANNEL_ISSUER,
        }
        env.update(extra)
        return env

    # --- keys ------------------------------------------------------------
    def add_key(self, kind: str = "channel", *, endorsements: Iterable[str] | None = (), kid: str | None = None) -> str:
        """Publish one more key in the `kind` ("channel" or "emulator") JWKS; returns its kid."""
        key = StubKey(kid or f"{kind}-{uuid.uuid4().hex[:12]}",
                      rsa.generate_private_key(public_exponent=65537, key_size=2048),
                      None if endorsements is None else list(endorsements))
        with self._lock:
            self._keys[kind].append(key)
        return key.kid

    def rotate_keys(self, kind: str = "channel") -> str:
        """Replace the default key of `kind` by a new one (new kid; the old one is no longer published)."""
        old = self.channel_kid if kind == "channel" else self.emulator_kid
        new = self.add_key(kind, endorsements=self.channels if kind == "channel" else None)
        with self._lock:
            self._keys[kind] = [k for k in self._keys[kind] if k.kid != old]
        if kind == "channel":
            self.channel_kid = new
        else:
            self.emulator_kid = new
        return new

    def key(self, kid: str) -> StubKey:
        with self._lock:
            for key in self._keys["channel"] + self._keys["emulator"]:
                if key.kid == kid:
                    return key
        raise KeyError(kid)

    @staticmethod
    def unpublished_key(endorsements: Iterable[str] | None = None) -> StubKey:
        """A key nobody publishes: what an attacker signs with."""
        return StubKey(f"rogue-{uuid.uuid4().hex[:12]}", rsa.generate_private_key(public_exponent=65537, key_size=2048),
                       None if endorsements is None else list(endorsements))

    # --- tokens ----------------------------------------------------------
    def issue_channel_token(self, app_id: str | None = None, service_url: str = "https://smba.example.test/amer/", *,
                            exp_offset: float = 3600, nbf_offset: float = -60,
                            claims: Mapping[str, Any] | None = None, alg: str = "RS256",
                            kid: str | None = None, key: StubKey | None = None,
                            headers: Mapping[str, Any] | None = None) -> str:
        """A token as the Bot Framework channel service sends it. In `claims`, a value of None removes the claim.

        The channel ids a token is good for are the `endorsements` of the key that signs it:
        pass `kid` of a key made with `add_key(endorsements=...)` to change them.
        """
        now = time.time()
        base = {"serviceurl": service_url, "nbf": int(now + nbf_offset), "exp": int(now + exp_offset),
                "iss": CHANNEL_ISSUER, "aud": self.app_id if app_id is None else app_id}
        return self.sign(base, claims, alg=alg, kid=kid or self.channel_kid, key=key, headers=headers)

    def issue_emulator_token(self, app_id: str | None = None, tenant: str = EMULATOR_TENANT_V32,
                             version: str = "1.0", *, exp_offset: float = 3600, nbf_offset: float = -60,
                             claims: Mapping[str, Any] | None = None, alg: str = "RS256",
                             kid: str | None = None, key: StubKey | None = None,
                             headers: Mapping[str, Any] | None = None) -> str:
        """A token as the Emulator gets it from Azure AD (scope `{app id}/.default`): v1 carries appid, v2 azp."""
        now = time.time()
        app = self.app_id if app_id is None else app_id
        base: dict[str, Any] = {"aud": app, "iss": emulator_issuer(tenant, version), "iat": int(now + nbf_offset),
                                "nbf": int(now + nbf_offset), "exp": int(now + exp_offset), "tid": tenant,
                                "ver": version}
        if version == "2.0":
            base.update(azp=app, azpacr="1")
        else:
            base.update(appid=app, appidacr="1")
        return self.sign(base, claims, alg=alg, kid=kid or self.emulator_kid, key=key, headers=headers)

    def sign(self, base: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, *, alg: str = "RS256",
             kid: str | None = None, key: StubKey | None = None, headers: Mapping[str, Any] | None = None) -> str:
        """Sign `base` updated by `overrides` (None removes) with a published key (by kid) or `key`.

        alg "none" and "HS256" are forgeries PyJWT refuses to make (HS256 keyed with the public
        key PEM: the classic algorithm-confusion attack).
        """
        payload = dict(base)
        for name, value in (overrides or {}).items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        signer = key or self.key(kid or self.channel_kid)
        header: dict[str, Any] = {"alg": alg, "typ": "JWT", "kid": signer.kid}
        for name, value in (headers or {}).items():
            if value is None:
                header.pop(name, None)
            else:
                header[name] = value
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}".encode()
        if alg == "none":
            signature = b""
        elif alg == "HS256":
            signature = hmac.new(signer.public_pem(), signing_input, hashlib.sha256).digest()
        else:  # built by hand so tests can also send headers PyJWT would refuse to write (e.g. a numeric kid)
            signature = get_default_algorithms()[alg].sign(signing_input, signer.private_key)
        return f"{signing_input.decode()}.{_b64(signature)}"

    def sign_activity(self, activity: Mapping[str, Any]) -> str:
        """An Authorization header value a channel would send with `activity` (for the local chat)."""
        channel_id = activity.get("channelId", "")
        if channel_id not in self.channels:
            raise ValueError(f"channel {channel_id!r} is not endorsed by the stub's key; pass it in channels=")
        return "Bearer " + self.issue_channel_token(self.app_id, activity["serviceUrl"])

    # --- the service -----------------------------------------------------
    def _handle(self, request: StubRequest) -> StubResponse:
        if request.method != "GET":
            return StubResponse(405, {"error": "method_not_allowed"})
        with self._lock:
            if request.path == CHANNEL_METADATA_PATH:
                self.channel_metadata_fetches += 1
                return StubResponse(200, self._metadata(CHANNEL_ISSUER, CHANNEL_JWKS_PATH))
            if request.path == EMULATOR_METADATA_PATH:
                self.emulator_metadata_fetches += 1
                return StubResponse(200, self._metadata(
                    "https://login.microsoftonline.com/{tenantid}/v2.0", EMULATOR_JWKS_PATH))
            if request.path == CHANNEL_JWKS_PATH:
                self.channel_jwks_fetches += 1
                return StubResponse(200, {"keys": [k.jwk() for k in self._keys["channel"]]})
            if request.path == EMULATOR_JWKS_PATH:
                self.emulator_jwks_fetches += 1
                return StubResponse(200, {"keys": [k.jwk() for k in self._keys["emulator"]]})
        return StubResponse(404, {"error": "not_found"})

    def _metadata(self, issuer: str, jwks_path: str) -> dict[str, Any]:
        return {"issuer": issuer, "authorization_endpoint": f"{self.url}/unused", "jwks_uri": self.url + jwks_path,
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"]}
