"""The Microsoft identity platform's client-credentials token endpoint, as the bot uses it."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from stubs.graph import DEFAULT_ROLES, GRAPH_SCOPE
from stubs.server import StubRequest, StubResponse, StubServer


@dataclass(frozen=True)
class _Issued:
    expiry: float
    audience: str  # the scope's resource: https://api.botframework.com or https://graph.microsoft.com
    tenant: str
    roles: tuple[str, ...]


class TokenStub:
    """`POST {url}/{tenant}/oauth2/v2.0/token`: issues opaque bearer tokens and counts fetches.

    Only the configured client id and secret, and the configured scope or Microsoft Graph's
    (`https://graph.microsoft.com/.default`), get a token (400/401 otherwise, as the real endpoint).
    `is_valid(token)` lets the connector stub accept exactly the tokens issued here for the bot's
    scope and not yet expired; `claims(token)` lets the Graph stub read a token's audience, tenant
    (the path's) and roles. A Graph token carries `graph_roles` as they are when it is issued
    (the app's admin-consented application permissions: remove one to see Graph refuse a call).
    """

    def __init__(self, app_id: str, app_password: str, *, scope: str = "https://api.botframework.com/.default",
                 expires_in: int = 3600, latency: float = 0.0, graph_roles: Iterable[str] = DEFAULT_ROLES) -> None:
        self.app_id = app_id
        self.app_password = app_password
        self.scope = scope
        self.expires_in = expires_in
        self.latency = latency
        self.graph_roles = set(graph_roles)
        self.fetches = 0  # tokens issued
        self.requests = 0  # every POST to the token route, refused ones included
        self.tenants: list[str] = []
        self.scopes: list[str] = []  # the scope of each token issued
        self._issued: dict[str, _Issued] = {}
        self._lock = threading.Lock()
        self._server = StubServer(self._handle)

    @property
    def url(self) -> str:
        return self._server.url

    def login_url(self, tenant: str = "botframework.com") -> str:
        """The value for the ToChannelFromBotLoginUrl setting."""
        return f"{self.url}/{tenant}"

    def start(self) -> TokenStub:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> TokenStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def is_valid(self, token: str, audience: str | None = None) -> bool:
        """Issued here for `audience` (default: the configured scope's resource) and not expired."""
        with self._lock:
            issued = self._issued.get(token)
        wanted = audience if audience is not None else _resource(self.scope)
        return issued is not None and issued.audience == wanted and issued.expiry > time.time()

    def claims(self, token: str) -> dict[str, Any] | None:
        """What the token says (aud, tid, appid, roles, exp; expired ones too), or None for a token never issued."""
        with self._lock:
            issued = self._issued.get(token)
        if issued is None:
            return None
        return {"aud": issued.audience, "tid": issued.tenant, "appid": self.app_id, "roles": list(issued.roles),
                "exp": issued.expiry}

    def expire_all(self) -> None:
        """Make every token issued so far invalid, as if its hour had passed."""
        with self._lock:
            self._issued = {token: _Issued(0.0, i.audience, i.tenant, i.roles) for token, i in self._issued.items()}

    def _handle(self, request: StubRequest) -> StubResponse:
        if request.method != "POST" or not request.path.endswith("/oauth2/v2.0/token"):
            return StubResponse(404, {"error": "not_found"})
        with self._lock:
            self.requests += 1
        if self.latency:
            time.sleep(self.latency)
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return StubResponse(400, {"error": "unsupported_grant_type"})
        if form.get("client_id") != self.app_id or form.get("client_secret") != self.app_password:
            return StubResponse(401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})
        scope = form.get("scope", "")
        if scope not in (self.scope, GRAPH_SCOPE):
            return StubResponse(400, {"error": "invalid_scope"})
        tenant = request.path.strip("/").split("/")[0]
        roles = tuple(sorted(self.graph_roles)) if scope == GRAPH_SCOPE else ()
        token = secrets.token_urlsafe(32)
        with self._lock:
            self.fetches += 1
            self.tenants.append(tenant)
            self.scopes.append(scope)
            self._issued[token] = _Issued(time.time() + self.expires_in, _resource(scope), tenant, roles)
        return StubResponse(200, {"token_type": "Bearer", "expires_in": self.expires_in,
                                  "ext_expires_in": self.expires_in, "access_token": token})


def _resource(scope: str) -> str:
    return scope.removesuffix("/.default").rstrip("/")
