"""The managed-identity endpoint of Azure Functions / App Service (IDENTITY_ENDPOINT), as the app uses it."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from stubs.graph import DEFAULT_ROLES, DEFAULT_TENANT_ID, GRAPH_RESOURCE
from stubs.server import StubRequest, StubResponse, StubServer

API_VERSION = "2019-08-01"
BOT_RESOURCE = "https://api.botframework.com"
STORAGE_RESOURCE = "https://storage.azure.com"


class ManagedIdentityStub:
    """`GET {endpoint}?resource=…&api-version=2019-08-01&client_id=…` with `X-IDENTITY-HEADER`.

    Issues opaque tokens for the user-assigned identities it is given (client ids) and the
    resources it knows, and counts fetches. Like the real endpoint: a wrong or missing
    X-IDENTITY-HEADER is refused (401), an identity not assigned to the app is a 400 that says
    so, and `expires_on` is epoch seconds as a string. `is_valid(token)` lets the connector
    stub accept exactly the tokens issued here for the Bot Connector and not yet expired;
    `claims(token)` lets the Graph stub read a token's audience, tenant and roles. A token for
    Microsoft Graph (resource https://graph.microsoft.com) carries `graph_roles` as they are when
    it is issued (the identity's application permissions: remove one to see Graph refuse a call).
    """

    def __init__(self, client_ids: tuple[str, ...] | str, *,
                 resources: tuple[str, ...] = (BOT_RESOURCE, STORAGE_RESOURCE, GRAPH_RESOURCE),
                 expires_in: int = 86400, latency: float = 0.0, tenant_id: str = DEFAULT_TENANT_ID,
                 graph_roles: Iterable[str] = DEFAULT_ROLES) -> None:
        self.client_ids = (client_ids,) if isinstance(client_ids, str) else tuple(client_ids)
        self.resources = resources
        self.expires_in = expires_in  # the real endpoint hands out tokens valid for about a day
        self.latency = latency
        self.tenant_id = tenant_id  # the identity's tenant: the tid of its tokens
        self.graph_roles = set(graph_roles)
        self.header = secrets.token_urlsafe(24)  # the value for IDENTITY_HEADER
        self.fetches = 0  # tokens issued
        self.requests = 0  # every GET, refused ones included
        self.issued_for: list[tuple[str, str]] = []  # (client id, resource) per token issued
        self._issued: dict[str, tuple[float, str, str, tuple[str, ...]]] = {}  # expiry, resource, client id, roles
        self._lock = threading.Lock()
        self._server = StubServer(self._handle)

    @property
    def endpoint(self) -> str:
        """The value for the IDENTITY_ENDPOINT variable."""
        return f"{self._server.url}/msi/token"

    def environment(self) -> dict[str, str]:
        """IDENTITY_ENDPOINT and IDENTITY_HEADER, as the platform sets them for the worker."""
        return {"IDENTITY_ENDPOINT": self.endpoint, "IDENTITY_HEADER": self.header}

    def start(self) -> ManagedIdentityStub:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> ManagedIdentityStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.fetches = self.requests = 0
            self.issued_for.clear()
        self.latency = 0.0

    def is_valid(self, token: str, resource: str = BOT_RESOURCE) -> bool:
        with self._lock:
            expiry, issued_resource, _, _ = self._issued.get(token, (0.0, "", "", ()))
        return issued_resource == resource and expiry > time.time()

    def claims(self, token: str) -> dict[str, Any] | None:
        """What the token says (aud, tid, appid, roles, exp; expired ones too), or None for a token never issued."""
        with self._lock:
            issued = self._issued.get(token)
        if issued is None:
            return None
        expiry, resource, client_id, roles = issued
        return {"aud": resource, "tid": self.tenant_id, "appid": client_id, "roles": list(roles), "exp": expiry}

    def expire_all(self) -> None:
        """Make every token issued so far invalid, as if its day had passed."""
        with self._lock:
            self._issued = {token: (0.0, *rest) for token, (_, *rest) in self._issued.items()}

    def _handle(self, request: StubRequest) -> StubResponse:
        if request.path != "/msi/token":
            return StubResponse(404, {"statusCode": 404, "message": "Not found"})
        with self._lock:
            self.requests += 1
        if self.latency:
            time.sleep(self.latency)
        if request.method != "GET":
            return StubResponse(405, {"statusCode": 405, "message": "Method not allowed"})
        headers = {k.lower(): v for k, v in request.headers.items()}
        if headers.get("x-identity-header") != self.header:
            return StubResponse(401, {"statusCode": 401, "message": "Unauthorized: X-IDENTITY-HEADER is missing or invalid."})
        query = {k: v[0] for k, v in parse_qs(request.query).items()}
        if query.get("api-version") != API_VERSION:
            return StubResponse(400, {"statusCode": 400, "message": "Invalid api-version."})
        client_id = query.get("client_id", "")
        if client_id not in self.client_ids:
            return StubResponse(400, {"statusCode": 400, "message": "No User Assigned or Delegated Managed Identity "
                                      "found for specified ClientId/ResourceId/PrincipalId.",
                                      "correlationId": secrets.token_hex(8)})
        resource = query.get("resource", "").removesuffix("/.default").rstrip("/")
        if resource not in self.resources:
            return StubResponse(400, {"statusCode": 400, "message": f"AADSTS500011: The resource principal named "
                                      f"{resource} was not found in the tenant."})
        token = secrets.token_urlsafe(32)
        expires_on = int(time.time()) + self.expires_in
        roles = tuple(sorted(self.graph_roles)) if resource == GRAPH_RESOURCE else ()
        with self._lock:
            self.fetches += 1
            self.issued_for.append((client_id, resource))
            self._issued[token] = (float(expires_on), resource, client_id, roles)
        return StubResponse(200, {"access_token": token, "expires_on": str(expires_on), "resource": resource,
                                  "token_type": "Bearer", "client_id": client_id})
