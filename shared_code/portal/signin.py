"""Who is calling the authors' page: the author App Service Authentication (Easy Auth) signed in.

Easy Auth sits in front of the app: it signs the author in with Entra ID and adds, to each request it lets
through, `X-MS-CLIENT-PRINCIPAL` (base64 JSON: `auth_typ`, `claims` [{typ, val}], `name_typ`, `role_typ`) and,
with its token store on, the author's ID token in `X-MS-TOKEN-AAD-ID-TOKEN`; it drops those headers from what
the browser sent. Nothing else can be trusted to have done so, hence two checks before the header is believed:
- `WEBSITE_AUTH_ENABLED` is "True": App Service sets it when authentication is on. Without it the headers
  came from whoever sent the request, and the page's API answers 401.
- When the app is deployed (a `MicrosoftAppId`), the ID token must verify: signed by a key of Entra's
  OpenID metadata for the tenant, issued by that tenant, for `PortalClientId`, unexpired, for the same object
  id as the principal. A platform that runs the app without enforcing authentication (Microsoft's docs said
  so of the Flex Consumption plan) passes forged headers through: no one can forge the signature.
  Docs: "Work with user identities in AuthN/AuthZ" (access user claims in app code) and "Token store".
The dev host plays Easy Auth in local mode (devhost/http_trigger.py), with no ID token to check.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt
import requests

from shared_code.notifications.records.catalogue import Actor
from shared_code.plumbing.errors import Unauthorized
from shared_code.plumbing.settings import Settings
from shared_code.protocol.inbound_auth import ALLOWED_ALGORITHMS, CLOCK_SKEW_SECONDS, SigningKeyCache

PRINCIPAL_HEADER = "x-ms-client-principal"
ID_TOKEN_HEADER = "x-ms-token-aad-id-token"
MAX_HEADER_CHARS = 16 * 1024
ENTRA_METADATA = "https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"
ENTRA_ISSUER = "https://login.microsoftonline.com/{tenant}/v2.0"
OBJECT_ID_TYPES = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
NAME_TYPES = ("name", "preferred_username", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name")
ROLE_TYPES = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
GROUP_TYPES = ("groups",)


class Role(StrEnum):
    AUTHORS = "Authors"
    ADMINS = "Admins"


@dataclass(frozen=True, slots=True)
class Author:
    """A signed-in person and the roles the page gives them (none: they may only look at their own page)."""

    id: str  # Entra object id
    name: str
    roles: frozenset[Role]

    @property
    def actor(self) -> Actor:
        return Actor(self.id, self.name)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "roles": sorted(r.value for r in self.roles)}


class IdTokenCheck:
    """Verifies the ID token Easy Auth forwards; one per process (it holds the signing keys)."""

    def __init__(self, settings: Settings, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        tenant = settings.microsoft_app_tenant_id
        self._client_id = settings.portal_client_id
        self._issuer = ENTRA_ISSUER.format(tenant=tenant)
        self._clock = clock
        url = settings.portal_openid_metadata_url or ENTRA_METADATA.format(tenant=tenant)
        self._keys = SigningKeyCache(url, session or requests.Session(), clock)

    def verify(self, token: str) -> dict[str, Any]:
        if not self._client_id:
            raise Unauthorized("PortalClientId is not set: the authors' page cannot check who signed in")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("the sign-in token is malformed") from exc
        kid = header.get("kid")
        if header.get("alg") not in ALLOWED_ALGORITHMS or not isinstance(kid, str) or "crit" in header:
            raise Unauthorized("the sign-in token is not signed as Entra ID signs")
        key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("the sign-in token's key is not Entra ID's")
        try:
            return jwt.decode(token, key.public_key, algorithms=list(ALLOWED_ALGORITHMS), audience=self._client_id,
                              issuer=self._issuer, leeway=CLOCK_SKEW_SECONDS,
                              options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the sign-in has expired: sign in again") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("the sign-in token does not verify") from exc


def signed_in(headers: Mapping[str, str], settings: Settings, id_tokens: IdTokenCheck | None) -> Author:
    """The author behind this request, or Unauthorized. `headers`: lower-case names."""
    if not settings.website_auth_enabled:
        raise Unauthorized("the authors' page needs App Service Authentication (WEBSITE_AUTH_ENABLED is not on): "
                           "a sign-in header is not trusted without it")
    claims = _principal_claims(headers.get(PRINCIPAL_HEADER, ""))
    object_id = _first(claims, OBJECT_ID_TYPES)
    if not object_id:
        raise Unauthorized("the sign-in has no object id")
    if not settings.local_mode:
        if id_tokens is None:
            raise Unauthorized("no check of the sign-in token is configured")
        token = headers.get(ID_TOKEN_HEADER, "")
        if not token or len(token) > MAX_HEADER_CHARS:
            raise Unauthorized("no sign-in token: turn on App Service Authentication's token store")
        verified = id_tokens.verify(token)
        if verified.get("oid") != object_id:
            raise Unauthorized("the sign-in token is someone else's")
    return Author(object_id, _first(claims, NAME_TYPES) or object_id, _roles(claims, settings))


def _principal_claims(encoded: str) -> list[tuple[str, str]]:
    if not encoded:
        raise Unauthorized("not signed in")
    if len(encoded) > MAX_HEADER_CHARS:
        raise Unauthorized("the sign-in header is too large")
    try:
        principal = json.loads(base64.b64decode(encoded, validate=False))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise Unauthorized("the sign-in header is malformed") from exc
    claims = principal.get("claims") if isinstance(principal, dict) else None
    if not isinstance(claims, list):
        raise Unauthorized("the sign-in header has no claims")
    found: list[tuple[str, str]] = []
    for claim in claims:
        if isinstance(claim, dict) and isinstance(claim.get("typ"), str) and isinstance(claim.get("val"), str):
            found.append((claim["typ"], claim["val"]))
    role_type = principal.get("role_typ")
    if isinstance(role_type, str) and role_type not in ROLE_TYPES:
        found = [("roles", v) if t == role_type else (t, v) for t, v in found]
    return found


def _first(claims: list[tuple[str, str]], types: tuple[str, ...]) -> str:
    for wanted in types:
        for typ, value in claims:
            if typ == wanted and value:
                return value
    return ""


def _roles(claims: list[tuple[str, str]], settings: Settings) -> frozenset[Role]:
    """App roles named Authors or Admins, and the groups the settings make Authors or Admins."""
    values = {value for typ, value in claims if typ in ROLE_TYPES}
    groups = {value for typ, value in claims if typ in GROUP_TYPES}
    roles = {role for role in Role if role.value in values}
    if settings.portal_authors_group_id and settings.portal_authors_group_id in groups:
        roles.add(Role.AUTHORS)
    if settings.portal_admins_group_id and settings.portal_admins_group_id in groups:
        roles.add(Role.ADMINS)
    return frozenset(roles)


__all__ = ["Author", "IdTokenCheck", "Role", "signed_in"]
