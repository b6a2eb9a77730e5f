"""The Microsoft identity platform's client-credentials token endpoint, as the bot uses it."""

from __future__ import annotations

import secrets
import threading
import time
from urllib.parse import parse_qs

from stubs.server import StubRequest, StubResponse, StubServer


class TokenStub:
    """`POST {url}/{tenant}/oauth2/v2.0/token`: issues opaque bearer tokens and counts fetches.

    Only the configured client id, secret and scope get a token (400 invalid_client
    otherwise, as the real endpoint). `is_valid(token)` lets the connector stub
    accept exactly the tokens issued here and not yet expired.
    """

    def __init__(self, app_id: str, app_password: str, *, scope: str = "https://api.botframework.com/.default",
                 expires_in: int = 3600, latency: float = 0.0) -> None:
        self.app_id = app_id
        self.app_password = app_password
        self.scope = scope
        self.expires_in = expires_in
        self.latency = latency
        self.fetches = 0  # tokens issued
        self.requests = 0  # every POST to the token route, refused ones included
        self.tenants: list[str] = []
        self._issued: dict[str, float] = {}
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

    def is_valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._issued.get(token)
        return expiry is not None and expiry > time.time()

    def expire_all(self) -> None:
        """Make every token issued so far invalid, as if its hour had passed."""
        with self._lock:
            self._issued = dict.fromkeys(self._issued, 0.0)

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
        if form.get("scope") != self.scope:
            return StubResponse(400, {"error": "invalid_scope"})
        token = secrets.token_urlsafe(32)
        with self._lock:
            self.fetches += 1
            self.tenants.append(request.path.strip("/").split("/")[0])
            self._issued[token] = time.time() + self.expires_in
        return StubResponse(200, {"token_type": "Bearer", "expires_in": self.expires_in,
                                  "ext_expires_in": self.expires_in, "access_token": token})
