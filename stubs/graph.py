"""Microsoft Graph, for the routes the app uses to reach people who never wrote to the bot.

Served under `{url}/v1.0`, so the app's `GraphBaseUrl` is `stub.base_url` and its paths are the real ones.
What each route does, and where that comes from (learn.microsoft.com):

- `GET /groups/{id}/transitiveMembers/microsoft.graph.user` (graph/api/group-list-transitivemembers): the users
  among a group's members, nested groups followed (each user once, cycles allowed); devices, orgContacts and the
  groups themselves are left out by the cast. The cast is an advanced query (graph/aad-advanced-queries): without
  `ConsistencyLevel: eventual` and `$count=true` it is a 400 `Request_UnsupportedQuery`. An unknown group is a 404
  `Request_ResourceNotFound`.
- `GET /users` (graph/api/user-list) with `$filter` on `accountEnabled` and `userType` (eq, joined by and);
  anything else in `$filter` is a 400 `Request_UnsupportedQuery`, as Graph answers a query it does not support.
  `GET /users/{id | userPrincipalName}` (graph/api/user-get): one user, or 404 `Request_ResourceNotFound`.
  Object ids are GUIDs, matched whatever their case; user principal names too.
- Both page with `$top` (default 100, at most 999) and an absolute `@odata.nextLink` carrying a `$skiptoken`;
  `@odata.count` when `$count=true` (which needs `ConsistencyLevel: eventual`, graph/aad-advanced-queries).
- `POST /users/{id | userPrincipalName}/teamwork/installedApps` (graph/api/userteamwork-post-installedapps):
  201 with no body; the app already installed for that user is a 409; a user the tenant's app permission policy
  blocks is a 403; an unknown user, or one without a Teams licence, is a 404. Then Teams tells the bot: a
  `conversationUpdate` in personal scope (msteams-docs: send-proactive-messages, "proactive app installation").
- `GET /users/{id}/teamwork/installedApps?$expand=teamsApp&$filter=teamsApp/id eq '{id}'`
  (graph/api/userteamwork-list-installedapps).
- `GET /users/{id}/teamwork/installedApps/{installationId}/chat` (graph/api/userscopeteamsappinstallation-get-chat):
  the 1:1 chat between the user and the bot, `19:{user id}_{bot id}@unq.gbl.spaces`.
- `GET /appCatalogs/teamsApps?$filter=externalId eq '{manifest id}'` (graph/api/appcatalogs-list-teamsapps, the
  page the brief calls teamsapp-list): the org catalog's entry for the app; its `id` is what installs bind to.
- Throttling (graph/throttling-limits#microsoft-teams-service-limits): per app per tenant, POST installedApps
  30/s, GET installedApps 30/s, other Teams GETs 30/s; per app across tenants 300, 600 and 1500/s. Directory
  reads fall under the identity service's limits (graph/throttling-limits#identity-and-access-service-limits):
  8,000 resource units per 10 s for an app in a large tenant, counted here as one unit a request. Counted in
  sliding windows; above a limit, 429 with `Retry-After` (whole seconds).
- Errors are Graph's shape (graph/errors): `{"error": {"code", "message", "innerError": {"date", "request-id",
  "client-request-id"}}}`, with `request-id` and `client-request-id` headers.
- Auth, when on: a bearer token for the resource `https://graph.microsoft.com` (401 `InvalidAuthenticationToken`
  otherwise) whose `roles` hold one of the application permissions the route's page lists (403
  `Authorization_RequestDenied` otherwise). Off (local mode): no token needed.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import itertools
import json
import math
import re
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

import requests

from stubs.server import StubRequest, StubResponse, StubServer

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_SCOPE = GRAPH_RESOURCE + "/.default"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"  # Graph's own app id: tokens may carry it as aud
REAL_BASE_URL = GRAPH_RESOURCE + "/v1.0"
DEFAULT_TENANT_ID = "5d2e7a1c-3f4b-4c8e-9a61-0b7d3e5f9c24"
DEFAULT_SERVICE_URL = "https://smba.trafficmanager.net/teams/"

INSTALL_ROLE = "TeamsAppInstallation.ReadWriteSelfForUser.All"
GROUP_MEMBERS_ROLE = "GroupMember.Read.All"
USERS_ROLE = "User.Read.All"
CATALOG_ROLE = "AppCatalog.Read.All"
# What the app's registration is granted by default: the three the app needs, and the catalog read its lookup of
# the catalog id needs (none when TeamsAppCatalogId is set).
DEFAULT_ROLES = (INSTALL_ROLE, GROUP_MEMBERS_ROLE, USERS_ROLE, CATALOG_ROLE)

# Application permissions that allow each call, least privileged first (each route's "Permissions" table).
_WRITE_INSTALLS = ("TeamsAppInstallation.ReadWriteSelfForUser.All", "TeamsAppInstallation.ReadWriteForUser.All",
                   "TeamsAppInstallation.ReadWriteAndConsentSelfForUser.All",
                   "TeamsAppInstallation.ReadWriteAndConsentForUser.All",
                   "TeamsAppInstallation.ReadWriteSelectedForUser.All", "TeamsAppInstallation.ManageSelectedForUser.All")
_READ_INSTALLS = ("TeamsAppInstallation.ReadForUser.All", *_WRITE_INSTALLS)
_READ_GROUP_MEMBERS = ("GroupMember.Read.All", "GroupMember.ReadWrite.All", "Group.Read.All", "Group.ReadWrite.All",
                       "Directory.Read.All", "Directory.ReadWrite.All")
# User.ReadBasic.All is not enough: the filter reads accountEnabled and userType, which it does not cover.
_READ_USERS = ("User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")
_READ_CATALOG = ("AppCatalog.Read.All", "AppCatalog.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")

MAX_TOP = 999
DEFAULT_TOP = 100
CHANNEL_ID = "msteams"
INSUFFICIENT_PRIVILEGES = "Insufficient privileges to complete the operation."


class CallKind(StrEnum):
    """A kind of call, as Graph's throttling tables group them."""

    INSTALL = "POST installedApps"
    INSTALLED_APPS = "GET installedApps"  # a user's installed apps and an installation's chat
    TEAMS_GET = "GET other Teams"  # the app catalog
    DIRECTORY = "GET directory"  # users and group members (the identity service)


# (requests, seconds) per app per tenant, and per app across all tenants.
TENANT_LIMITS: dict[CallKind, tuple[int, float]] = {
    CallKind.INSTALL: (30, 1.0), CallKind.INSTALLED_APPS: (30, 1.0), CallKind.TEAMS_GET: (30, 1.0),
    CallKind.DIRECTORY: (8000, 10.0)}
APP_LIMITS: dict[CallKind, tuple[int, float]] = {
    CallKind.INSTALL: (300, 1.0), CallKind.INSTALLED_APPS: (600, 1.0), CallKind.TEAMS_GET: (1500, 1.0),
    CallKind.DIRECTORY: (150_000, 20.0)}

_DEFAULT_CODES = {400: "BadRequest", 401: "InvalidAuthenticationToken", 403: "Forbidden", 404: "NotFound",
                  409: "Conflict", 429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway",
                  503: "ServiceNotAvailable", 504: "GatewayTimeout"}


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "")


@dataclass(frozen=True)
class GraphFault:
    """One error answer, shaped as Graph shapes it."""

    status: int
    code: str = ""
    message: str = ""
    retry_after: float | None = None

    def response(self, client_request_id: str = "") -> StubResponse:
        request_id = str(uuid.uuid4())
        client_request_id = client_request_id or request_id
        headers = {"request-id": request_id, "client-request-id": client_request_id}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(0, math.ceil(self.retry_after)))
        if self.status == 401:
            headers["WWW-Authenticate"] = f'Bearer realm="", authorization_uri="https://login.microsoftonline.com/' \
                                          f'common/oauth2/authorize", client_id="{GRAPH_APP_ID}"'
        error = {"code": self.code or _DEFAULT_CODES.get(self.status, "UnknownError"),
                 "message": self.message or f"stub fault {self.status}",
                 "innerError": {"date": _utc_now(), "request-id": request_id, "client-request-id": client_request_id}}
        return StubResponse(self.status, {"error": error}, headers)


# (kind, target: the user or group named in the path, "" for a collection, attempt from 1) -> fault
GraphFaultPolicy = Callable[[CallKind, str, int], "GraphFault | None"]


class GraphLimits:
    """Graph's throttling for the stub: sliding windows per (tenant, kind) and per kind across tenants.

    `GraphLimits()` has the documented limits (TENANT_LIMITS, APP_LIMITS); `GraphLimits.off()` none. Counters:
    `accepted(kind, tenant)`, `throttled(kind, tenant)` (tenant None: every tenant), `max_in_window(kind, tenant)`.
    """

    def __init__(self, per_tenant: Mapping[CallKind, tuple[int, float]] | None = None,
                 per_app: Mapping[CallKind, tuple[int, float]] | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_tenant = dict(TENANT_LIMITS if per_tenant is None else per_tenant)
        self.per_app = dict(APP_LIMITS if per_app is None else per_app)
        self._clock = clock
        self._lock = threading.Lock()
        self._tenant_windows: dict[tuple[str, CallKind], deque[float]] = defaultdict(deque)
        self._app_windows: dict[CallKind, deque[float]] = defaultdict(deque)
        self._accepted: dict[tuple[str, CallKind], int] = defaultdict(int)
        self._throttled: dict[tuple[str, CallKind], int] = defaultdict(int)
        self._max: dict[tuple[str, CallKind], int] = defaultdict(int)

    @classmethod
    def off(cls, *, clock: Callable[[], float] = time.monotonic) -> GraphLimits:
        return cls({}, {}, clock=clock)

    def admit(self, tenant: str, kind: CallKind) -> GraphFault | None:
        """Count one call, or answer 429 with the seconds until the window has room again."""
        with self._lock:
            now = self._clock()
            checks = [(self._tenant_windows[(tenant, kind)], self.per_tenant.get(kind)),
                      (self._app_windows[kind], self.per_app.get(kind))]
            for window, limit in checks:
                if limit is None:
                    continue
                allowed, seconds = limit
                while window and window[0] <= now - seconds:
                    window.popleft()
                if len(window) >= allowed:
                    self._throttled[(tenant, kind)] += 1
                    wait = window[len(window) - allowed] + seconds - now
                    return GraphFault(429, "TooManyRequests", "Too many requests; retry after the time given in "
                                      "Retry-After.", retry_after=max(1.0, wait))
            for window, limit in checks:
                if limit is not None:
                    window.append(now)
            key = (tenant, kind)
            self._accepted[key] += 1
            self._max[key] = max(self._max[key], len(checks[0][0]))
            return None

    def _sum(self, counts: Mapping[tuple[str, CallKind], int], kind: CallKind | None, tenant: str | None) -> int:
        return sum(n for (t, k), n in counts.items() if (kind is None or k == kind) and (tenant is None or t == tenant))

    def accepted(self, kind: CallKind | None = None, tenant: str | None = None) -> int:
        with self._lock:
            return self._sum(self._accepted, kind, tenant)

    def throttled(self, kind: CallKind | None = None, tenant: str | None = None) -> int:
        with self._lock:
            return self._sum(self._throttled, kind, tenant)

    def max_in_window(self, kind: CallKind, tenant: str) -> int:
        """The most calls of `kind` accepted for `tenant` in any one of its windows (only kinds with a limit)."""
        with self._lock:
            return self._max.get((tenant, kind), 0)


# --- $filter ------------------------------------------------------------------------------------------------------

class UnsupportedFilter(ValueError):
    """A $filter this stub does not understand (Graph: 400 Request_UnsupportedQuery)."""


_FILTER_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<word>[A-Za-z_][A-Za-z0-9_./]*)|(?P<other>\S))")


def parse_filter(text: str) -> list[tuple[str, Any]]:
    """`prop eq literal [and prop eq literal]...` -> [(prop, value)]; literals are 'strings' ('' escapes a quote),
    true and false. Anything else (or, ne, not, functions, parentheses, numbers) raises UnsupportedFilter."""
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _FILTER_TOKEN.match(text, position)
        if match is None or match.group("other"):
            raise UnsupportedFilter(f"unexpected {text[position:].strip()[:20]!r}")
        kind = "string" if match.group("string") else "word"
        tokens.append((kind, match.group(kind)))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    clauses: list[tuple[str, Any]] = []
    index = 0
    while True:
        if len(tokens) < index + 3:
            raise UnsupportedFilter("expected: property eq value")
        (prop_kind, prop), (_, operator), (value_kind, raw) = tokens[index:index + 3]
        if prop_kind != "word" or operator.lower() != "eq":
            raise UnsupportedFilter(f"only 'eq' is understood, not {operator!r}")
        if value_kind == "string":
            value: Any = raw[1:-1].replace("''", "'")
        elif raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            raise UnsupportedFilter(f"unexpected value {raw!r}")
        clauses.append((prop, value))
        index += 3
        if index == len(tokens):
            return clauses
        if tokens[index][0] != "word" or tokens[index][1].lower() != "and":
            raise UnsupportedFilter(f"only 'and' joins clauses, not {tokens[index][1]!r}")
        index += 1


def _filter_by(text: str, allowed: Mapping[str, type]) -> dict[str, Any]:
    """The clauses of `text` as {canonical property: value}, each property at most once and of its type."""
    canonical = {name.lower(): name for name in allowed}
    result: dict[str, Any] = {}
    for prop, value in parse_filter(text):
        name = canonical.get(prop.lower())
        if name is None or name in result or not isinstance(value, allowed[name]):
            raise UnsupportedFilter(f"unsupported clause on {prop!r}")
        result[name] = value
    return result


# --- the directory -----------------------------------------------------------------------------------------------

_ID_NAMESPACE = uuid.UUID("3b1f6d0e-8c2a-4e57-9f14-6a0d2c7b5e83")


def aad_id(name: str, kind: str = "user") -> str:
    """A stable object id (a GUID) for a name: the same name gives the same id in every run."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{kind}:{name}"))


def teams_user_id(aad_object_id: str) -> str:
    """The Bot Framework id Teams gives a user ("29:1..."): derived from the AAD object id, so always the same."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(aad_object_id.lower().encode()).digest()).decode().rstrip("=")
    return f"29:1{digest}"


@dataclass(slots=True)
class GraphUser:
    id: str
    user_principal_name: str
    display_name: str
    account_enabled: bool = True
    user_type: str = "Member"  # or "Guest"
    licensed: bool = True  # has a Teams licence
    install_blocked: bool = False  # the tenant's app permission policy blocks the app for this user
    teams_id: str = field(init=False)

    def __post_init__(self) -> None:
        self.teams_id = teams_user_id(self.id)

    def property(self, name: str) -> Any:
        return _USER_PROPERTIES[name](self)


_USER_PROPERTIES: dict[str, Callable[[GraphUser], Any]] = {
    "id": lambda u: u.id, "userPrincipalName": lambda u: u.user_principal_name,
    "displayName": lambda u: u.display_name, "accountEnabled": lambda u: u.account_enabled,
    "userType": lambda u: u.user_type, "mail": lambda u: u.user_principal_name if u.user_type == "Member" else None,
}
_DEFAULT_USER_SELECT = ("id", "displayName", "userPrincipalName", "mail")
_USER_FILTERS: dict[str, type] = {"accountEnabled": bool, "userType": str}


@dataclass
class _Group:
    id: str
    display_name: str
    members: dict[str, None]  # member ids in order (a dict: ordered and without duplicates)


@dataclass(frozen=True)
class CatalogApp:
    id: str  # the catalog id, generated by the catalog
    external_id: str  # the manifest's id
    display_name: str
    bot_id: str  # the bot's app id: the chat id and the bot's "28:" id are made from it

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "externalId": self.external_id, "displayName": self.display_name,
                "distributionMethod": "organization"}


@dataclass(frozen=True)
class Installation:
    id: str
    user_id: str
    catalog_id: str
    chat_id: str
    created: str


class Delivery(Enum):
    """When the conversationUpdate of an install reaches the bot."""

    IMMEDIATE = "immediate"  # from a background thread, as the 201 is answered
    DELAYED = "delayed"  # `delivery_delay` seconds after the install
    HELD = "held"  # kept until `release()`
    OFF = "off"  # never


@dataclass(frozen=True)
class PostedUpdate:
    activity: dict[str, Any]
    status: int | None  # the bot's HTTP status; None when a `send` callable took it without one
    error: str = ""

    @property
    def delivered(self) -> bool:
        return not self.error and (self.status is None or 200 <= self.status < 300)


@dataclass(frozen=True)
class GraphCounters:
    calls: dict[CallKind, int]  # every request of each kind, refused ones included
    throttled: dict[CallKind, int]  # 429s given
    faults_injected: int
    installs: int  # apps installed by POST (not by `install()`)
    conversation_updates_posted: int  # delivered to the bot (2xx, or taken by a `send` callable)
    conversation_updates_held: int


# Returns the Authorization header value for one activity ("Bearer <jwt>"), as devhost.channel.Signer.
Signer = Callable[[dict[str, Any]], str]
# Delivers one activity itself; returns the bot's HTTP status, or None (taken, no status).
Sender = Callable[[dict[str, Any]], "int | None"]
# A bearer token -> its claims (aud, tid, roles, exp), or None for a token never issued.
TokenClaims = Callable[[str], "Mapping[str, Any] | None"]


@dataclass
class _Call:
    method: str
    segments: list[str]  # the path after /v1.0, each segment percent-decoded
    query: dict[str, str]
    pairs: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    client_request_id: str
    tenant: str = ""

    @property
    def advanced(self) -> bool:
        return self.headers.get("consistencylevel", "").lower() == "eventual"

    @property
    def count(self) -> bool:
        return self.query.get("$count", "").lower() == "true"


class GraphStub:
    """Microsoft Graph at `base_url` (`{url}/v1.0`). Control methods below; see the module's docstring for the routes.

    - tenant_id: the directory's tenant (in chats and conversationUpdates; the throttling key without auth);
    - auth: token -> claims (`TokenStub.claims`, `ManagedIdentityStub.claims`, or both with `any_issuer`); None:
      no token needed, and `roles_without_token` are the app's permissions;
    - limits: a GraphLimits (default: the documented limits; `GraphLimits.off()` for none);
    - faults: a GraphFaultPolicy; or queue faults per kind with `fail_next`;
    - service_url: the connector the bot answers Teams on (the conversationUpdate's serviceUrl);
    - bot_url + sign, or send: where an install's conversationUpdate goes; `delivery`, `delivery_delay`: when.
    """

    def __init__(self, *, tenant_id: str = DEFAULT_TENANT_ID, auth: TokenClaims | None = None,
                 roles_without_token: Iterable[str] = DEFAULT_ROLES, limits: GraphLimits | None = None,
                 faults: GraphFaultPolicy | None = None, service_url: str = DEFAULT_SERVICE_URL,
                 bot_url: str | None = None, sign: Signer | None = None, send: Sender | None = None,
                 delivery: Delivery = Delivery.IMMEDIATE, delivery_delay: float = 0.0,
                 latency: float = 0.0, delivery_workers: int = 8) -> None:
        self.tenant_id = tenant_id
        self.auth = auth
        self.roles_without_token = set(roles_without_token)
        self.limits = limits if limits is not None else GraphLimits()
        self.faults = faults
        self.service_url = service_url
        self.bot_url = bot_url
        self.sign = sign
        self.send = send
        self.delivery = delivery
        self.delivery_delay = delivery_delay
        self.latency = latency
        self._lock = threading.RLock()
        # directory
        self._objects: dict[str, str] = {}  # id -> "user" | "group" | "device" | "orgContact"
        self._users: dict[str, GraphUser] = {}
        self._user_list: list[GraphUser] = []
        self._by_upn: dict[str, GraphUser] = {}
        self._groups: dict[str, _Group] = {}
        self._names: dict[str, str] = {}  # device and orgContact display names
        self._version = 0  # bumped by every change of users or groups; views are rebuilt after one
        self._views: dict[Any, tuple[int, list[GraphUser]]] = {}
        # Teams
        self._catalog: dict[str, CatalogApp] = {}
        self._installs: dict[tuple[str, str], Installation] = {}
        self._installations: dict[str, Installation] = {}
        self._by_user_installs: dict[str, list[Installation]] = defaultdict(list)
        # counters and faults
        self._calls: dict[CallKind, int] = defaultdict(int)
        self._attempts: dict[tuple[CallKind, str], int] = defaultdict(int)
        self._queued: dict[CallKind, list[GraphFault]] = defaultdict(list)
        self._faults_injected = 0
        self._installs_made = 0
        # conversationUpdate delivery
        self._posted: list[PostedUpdate] = []
        self._held: list[dict[str, Any]] = []
        self._due: list[tuple[float, int, dict[str, Any]]] = []
        self._sequence = itertools.count()
        self._wake = threading.Condition()
        self._running = False
        self._dispatcher: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=delivery_workers, thread_name_prefix="graph-deliver")
        self._session = requests.Session()
        self._server = StubServer(self._handle)

    # --- lifecycle -----------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._server.url

    @property
    def base_url(self) -> str:
        """The value for the app's GraphBaseUrl setting."""
        return self._server.url + "/v1.0"

    def settings_env(self, **extra: str) -> dict[str, str]:
        """App settings pointing the app's Graph calls at this stub."""
        return {"GraphBaseUrl": self.base_url, **extra}

    def start(self) -> GraphStub:
        self._server.start()
        with self._wake:
            self._running = True
        self._dispatcher = threading.Thread(target=self._dispatch, name="graph-dispatch", daemon=True)
        self._dispatcher.start()
        return self

    def stop(self) -> None:
        with self._wake:
            self._running = False
            self._wake.notify_all()
        if self._dispatcher is not None:
            self._dispatcher.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._server.stop()
        self._session.close()

    def __enter__(self) -> GraphStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the directory: what tests arrange -------------------------------------------------------------------------
    def add_user(self, id: str | None = None, *, upn: str | None = None, display_name: str | None = None,  # noqa: A002
                 account_enabled: bool = True, user_type: str = "Member", licensed: bool = True,
                 install_blocked: bool = False) -> GraphUser:
        """A user (id: a new GUID when None; upn: `{id}@contoso.example` when None)."""
        user_id = id or str(uuid.uuid4())
        user = GraphUser(user_id, upn or f"{user_id}@contoso.example", display_name or user_id, account_enabled,
                         user_type, licensed, install_blocked)
        with self._lock:
            self._add_user(user)
            self._version += 1
        return user

    def add_users(self, count: int, *, prefix: str = "user", start: int = 0, group: str | None = None,
                  **fields: Any) -> list[GraphUser]:
        """`count` users named `{prefix}-{i}` with stable ids (aad_id), in O(count); into `group` when given
        (created if missing). `fields` as for add_user (account_enabled, user_type, licensed, install_blocked)."""
        made = []
        for i in range(start, start + count):
            name = f"{prefix}-{i}"
            made.append(GraphUser(aad_id(name), f"{name}@contoso.example", name.replace("-", " ").title(), **fields))
        with self._lock:
            for user in made:
                self._add_user(user)
            if group is not None:
                target = self._groups.get(group.lower()) if group is not None else None
                if target is None:
                    self._add_group(group, group, [u.id for u in made])
                else:
                    target.members.update(dict.fromkeys(u.id.lower() for u in made))
            self._version += 1
        return made

    def _add_user(self, user: GraphUser) -> None:
        if self._objects.get(user.id.lower(), "user") != "user":
            raise ValueError(f"{user.id} is already a {self._objects[user.id.lower()]}")
        key = user.id.lower()
        old = self._users.get(key)
        if old is not None:  # replaced in place: its place in the listing stays
            self._user_list[self._user_list.index(old)] = user
            self._by_upn.pop(old.user_principal_name.lower(), None)
        else:
            self._user_list.append(user)
        self._objects[key] = "user"
        self._users[key] = user
        self._by_upn[user.user_principal_name.lower()] = user

    def update_user(self, id_or_upn: str, **fields: Any) -> GraphUser:
        """Change a user's account_enabled, user_type, licensed, install_blocked or display_name."""
        with self._lock:
            user = self._find_user(id_or_upn)
            if user is None:
                raise KeyError(id_or_upn)
            for name, value in fields.items():
                if name not in ("account_enabled", "user_type", "licensed", "install_blocked", "display_name"):
                    raise TypeError(f"cannot change {name}")
                setattr(user, name, value)
            self._version += 1
            return user

    def user(self, id_or_upn: str) -> GraphUser | None:
        with self._lock:
            return self._find_user(id_or_upn)

    def add_group(self, id: str | None = None, *, display_name: str | None = None,  # noqa: A002
                  members: Iterable[str] = ()) -> str:
        """A group whose members are any directory objects (users, groups, devices, orgContacts), by id.
        Adding it again replaces its members. Returns its id."""
        group_id = id or str(uuid.uuid4())
        with self._lock:
            self._add_group(group_id, display_name or group_id, list(members))
            self._version += 1
        return group_id

    def _add_group(self, group_id: str, display_name: str, members: list[str]) -> None:
        key = group_id.lower()
        if self._objects.get(key, "group") != "group":
            raise ValueError(f"{group_id} is already a {self._objects[key]}")
        self._objects[key] = "group"
        self._groups[key] = _Group(group_id, display_name, {})
        self._add_members(group_id, members)

    def add_members(self, group_id: str, members: Iterable[str]) -> None:
        """More members for a group (nested groups and cycles allowed)."""
        with self._lock:
            self._add_members(group_id, list(members))
            self._version += 1

    def _add_members(self, group_id: str, members: list[str]) -> None:
        keys = [m.lower() for m in members]
        unknown = [m for m, key in zip(members, keys, strict=True) if key not in self._objects]
        if unknown:
            raise KeyError(f"not in the directory: {unknown[:5]}")
        self._groups[group_id.lower()].members.update(dict.fromkeys(keys))

    def add_device(self, id: str | None = None, *, display_name: str = "Device") -> str:  # noqa: A002
        return self._add_object(id, "device", display_name)

    def add_org_contact(self, id: str | None = None, *, display_name: str = "Contact") -> str:  # noqa: A002
        return self._add_object(id, "orgContact", display_name)

    def _add_object(self, object_id: str | None, kind: str, display_name: str) -> str:
        object_id = object_id or str(uuid.uuid4())
        key = object_id.lower()
        with self._lock:
            if self._objects.get(key, kind) != kind:
                raise ValueError(f"{object_id} is already a {self._objects[key]}")
            self._objects[key] = kind
            self._names[key] = display_name
            self._version += 1
        return object_id

    def transitive_users(self, group_id: str) -> list[GraphUser]:
        """What the transitiveMembers cast to users answers for the group, all pages together."""
        with self._lock:
            return list(self._transitive_users(group_id.lower()))

    # --- Teams: what tests arrange ---------------------------------------------------------------------------------
    def register_app(self, external_id: str, *, catalog_id: str | None = None, display_name: str = "Bot",
                     bot_id: str | None = None) -> str:
        """Publish the app to the org catalog: `external_id` is the manifest id, `bot_id` the bot's app id
        (default: the manifest id, as when one app registration serves both). Returns the catalog id."""
        app = CatalogApp(catalog_id or str(uuid.uuid4()), external_id, display_name, bot_id or external_id)
        with self._lock:
            self._catalog[app.id] = app
        return app.id

    def install(self, user: str, catalog_id: str | None = None, *, notify: bool = False) -> Installation:
        """Install the app for a user beforehand (an install the app did not make): no conversationUpdate unless
        `notify`, and not counted in `installs`. Installing again returns the same installation."""
        with self._lock:
            found, app = self._find_user(user), self._app(catalog_id)
            if found is None:
                raise KeyError(user)
            existing = self._installs.get((found.id, app.id))
            if existing is not None:
                return existing
            installation = self._record_install(found, app)
        if notify:
            self._schedule(self._conversation_update(found, app, installation))
        return installation

    def installation(self, user: str, catalog_id: str | None = None) -> Installation | None:
        with self._lock:
            found = self._find_user(user)
            return None if found is None else self._installs.get((found.id, self._app(catalog_id).id))

    def chat_id_for(self, user: str, catalog_id: str | None = None) -> str:
        """The chat an install of the app for `user` has (or will have): `19:{user id}_{bot id}@unq.gbl.spaces`."""
        with self._lock:
            found = self._find_user(user)
            if found is None:
                raise KeyError(user)
            return _chat_id(found, self._app(catalog_id))

    def _app(self, catalog_id: str | None) -> CatalogApp:
        if catalog_id is not None:
            return self._catalog[catalog_id]
        if len(self._catalog) != 1:
            raise ValueError(f"{len(self._catalog)} apps in the catalog: name the catalog id")
        return next(iter(self._catalog.values()))

    # --- faults and counters ---------------------------------------------------------------------------------------
    def fail_next(self, kind: CallKind, fault: GraphFault, times: int = 1) -> None:
        """The next `times` calls of `kind` (past auth and throttling) get `fault`."""
        with self._lock:
            self._queued[kind].extend([fault] * times)

    def counters(self) -> GraphCounters:
        with self._lock:
            return GraphCounters(
                calls=dict(self._calls), throttled={k: self.limits.throttled(k) for k in CallKind},
                faults_injected=self._faults_injected, installs=self._installs_made,
                conversation_updates_posted=sum(1 for p in self._posted if p.delivered),
                conversation_updates_held=len(self._held))

    def calls(self, kind: CallKind) -> int:
        with self._lock:
            return self._calls.get(kind, 0)

    @property
    def installs(self) -> int:
        """Apps installed by POST (409s, refusals and `install()` not counted)."""
        with self._lock:
            return self._installs_made

    # --- conversationUpdate delivery --------------------------------------------------------------------------------
    @property
    def conversation_updates(self) -> list[PostedUpdate]:
        """Every conversationUpdate posted so far, in order, with the bot's answer."""
        with self._lock:
            return list(self._posted)

    @property
    def held(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._held)

    def release(self, count: int | None = None) -> list[PostedUpdate]:
        """Post the held conversationUpdates (the first `count`, or all) now, in this thread, in order."""
        with self._lock:
            count = len(self._held) if count is None else count
            taken, self._held = self._held[:count], self._held[count:]
        return [self._post(activity) for activity in taken]

    def wait_for_conversation_updates(self, count: int, timeout: float = 10.0) -> list[PostedUpdate]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            posted = self.conversation_updates
            if len(posted) >= count:
                return posted
            time.sleep(0.01)
        return self.conversation_updates

    def _schedule(self, activity: dict[str, Any]) -> None:
        mode = self.delivery
        if mode is Delivery.OFF:
            return
        if mode is Delivery.HELD:
            with self._lock:
                self._held.append(activity)
            return
        due = time.monotonic() + (self.delivery_delay if mode is Delivery.DELAYED else 0.0)
        with self._wake:
            heapq.heappush(self._due, (due, next(self._sequence), activity))
            self._wake.notify()

    def _dispatch(self) -> None:
        while True:
            with self._wake:
                while self._running and (not self._due or self._due[0][0] > time.monotonic()):
                    self._wake.wait(None if not self._due else max(0.0, self._due[0][0] - time.monotonic()))
                if not self._running:
                    return
                _, _, activity = heapq.heappop(self._due)
            try:
                self._pool.submit(self._post, activity)
            except RuntimeError:  # the pool is shut down: the stub is stopping
                return

    def _post(self, activity: dict[str, Any]) -> PostedUpdate:
        try:
            if self.send is not None:
                posted = PostedUpdate(activity, self.send(activity))
            elif self.bot_url:
                headers = {"Content-Type": "application/json"}
                if self.sign is not None:
                    headers["Authorization"] = self.sign(activity)
                answer = self._session.post(self.bot_url, data=json.dumps(activity), headers=headers, timeout=30)
                posted = PostedUpdate(activity, answer.status_code)
            else:
                posted = PostedUpdate(activity, None, "no bot_url or send: nowhere to post")
        except Exception as exc:  # the bot being down is the bot's problem, not the stub's
            posted = PostedUpdate(activity, None, f"{type(exc).__name__}: {exc}")
        with self._lock:
            self._posted.append(posted)
        return posted

    def _conversation_update(self, user: GraphUser, app: CatalogApp, installation: Installation) -> dict[str, Any]:
        """What Teams posts to the bot when it is installed for a user: personal scope, the bot added."""
        bot = {"id": f"28:{app.bot_id}", "name": app.display_name}
        return {
            "type": "conversationUpdate",
            "id": f"f:{uuid.uuid4().hex}",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "channelId": CHANNEL_ID,
            "serviceUrl": self.service_url,
            "from": {"id": user.teams_id, "aadObjectId": user.id},
            "recipient": bot,
            "conversation": {"conversationType": "personal", "tenantId": self.tenant_id, "id": installation.chat_id},
            "membersAdded": [{"id": bot["id"]}],
            "channelData": {"tenant": {"id": self.tenant_id}},
        }

    # --- the service -------------------------------------------------------------------------------------------------
    def _handle(self, request: StubRequest) -> StubResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        client_request_id = headers.get("client-request-id", "")
        raw = request.path.split("/")
        if len(raw) < 2 or raw[1] != "v1.0":
            return GraphFault(400, "BadRequest", f"Invalid version: {raw[1] if len(raw) > 1 else ''}") \
                .response(client_request_id)
        pairs = parse_qsl(request.query, keep_blank_values=True)
        call = _Call(request.method, [unquote(s) for s in raw[2:]], dict(pairs), pairs, headers, request.body,
                     client_request_id)
        route = self._route(call)
        if isinstance(route, GraphFault):
            return route.response(client_request_id)
        kind, target, roles, handler = route
        with self._lock:
            self._calls[kind] += 1
        if self.latency:
            time.sleep(self.latency)
        claims, fault = self._authenticate(headers)
        call.tenant = str((claims or {}).get("tid") or self.tenant_id)
        fault = fault or self.limits.admit(call.tenant, kind) or self._injected(kind, target)
        if fault is None:
            granted = set((claims or {}).get("roles") or ()) if self.auth is not None else self.roles_without_token
            if not granted.intersection(roles):
                fault = GraphFault(403, "Authorization_RequestDenied", INSUFFICIENT_PRIVILEGES)
        if fault is not None:
            return fault.response(client_request_id)
        try:
            answer = handler(call)
        except _Refused as refused:
            return refused.fault.response(client_request_id)
        answer.headers.setdefault("request-id", str(uuid.uuid4()))
        answer.headers.setdefault("client-request-id", client_request_id or answer.headers["request-id"])
        return answer

    def _route(self, call: _Call) -> tuple[CallKind, str, tuple[str, ...], Callable[[_Call], StubResponse]] \
            | GraphFault:
        s, method = call.segments, call.method
        if method == "GET" and s == ["users"]:
            return CallKind.DIRECTORY, "", _READ_USERS, self._list_users
        if method == "GET" and len(s) == 2 and s[0] == "users":
            return CallKind.DIRECTORY, s[1], _READ_USERS, self._get_user
        if method == "GET" and len(s) >= 3 and s[0] == "groups" and s[2] == "transitiveMembers":
            if len(s) == 4 and s[3] == "microsoft.graph.user":
                return CallKind.DIRECTORY, s[1], _READ_GROUP_MEMBERS, self._transitive_members
        if len(s) >= 4 and s[0] == "users" and s[2:4] == ["teamwork", "installedApps"]:
            if method == "POST" and len(s) == 4:
                return CallKind.INSTALL, s[1], _WRITE_INSTALLS, self._install
            if method == "GET" and len(s) == 4:
                return CallKind.INSTALLED_APPS, s[1], _READ_INSTALLS, self._list_installed
            if method == "GET" and len(s) == 6 and s[5] == "chat":
                return CallKind.INSTALLED_APPS, s[1], _READ_INSTALLS, self._chat
        if method == "GET" and s == ["appCatalogs", "teamsApps"]:
            return CallKind.TEAMS_GET, "", _READ_CATALOG, self._list_catalog
        # Anything else is not served by this stub (Graph itself would serve much of it).
        return GraphFault(400, "BadRequest", f"Resource not found for the segment '{s[-1] if s else ''}' "
                          f"({method} {'/'.join(s)} is not served by the Graph stub).")

    def _authenticate(self, headers: Mapping[str, str]) -> tuple[Mapping[str, Any] | None, GraphFault | None]:
        if self.auth is None:
            return None, None  # local mode: the app sends no token
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, GraphFault(401, "InvalidAuthenticationToken", "Access token is empty.")
        claims = self.auth(token.strip())
        if claims is None:
            return None, GraphFault(401, "InvalidAuthenticationToken", "Access token validation failure.")
        if str(claims.get("aud", "")).rstrip("/") not in (GRAPH_RESOURCE, GRAPH_APP_ID):
            return None, GraphFault(401, "InvalidAuthenticationToken",
                                    "Access token validation failure. Invalid audience.")
        if float(claims.get("exp", 0)) <= time.time():
            return None, GraphFault(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
        return claims, None

    def _injected(self, kind: CallKind, target: str) -> GraphFault | None:
        with self._lock:
            self._attempts[(kind, target)] += 1
            attempt = self._attempts[(kind, target)]
            queued = self._queued.get(kind)
            fault = queued.pop(0) if queued else None
        if fault is None and self.faults is not None:
            fault = self.faults(kind, target, attempt)
        if fault is not None:
            with self._lock:
                self._faults_injected += 1
        return fault

    # --- directory routes --------------------------------------------------------------------------------------------
    def _list_users(self, call: _Call) -> StubResponse:
        _allow_options(call, {"$select", "$filter", "$top", "$count", "$skiptoken"})
        if call.count and not call.advanced:  # graph/aad-advanced-queries: $count needs ConsistencyLevel
            raise _Refused(400, "Request_BadRequest", "$count is not currently supported.")
        select = _select(call)
        filters = _user_filter(call)
        with self._lock:
            view = self._users_view(filters)
            return self._page(call, view, f"users|{sorted(filters.items())}",
                              _context(self.base_url, "users", select), lambda u: _render_user(u, select))

    def _get_user(self, call: _Call) -> StubResponse:
        # graph/api/user-get
        _allow_options(call, {"$select"})
        select = _select(call)
        with self._lock:
            user = self._find_user(call.segments[1])
            if user is None:
                raise _Refused(404, "Request_ResourceNotFound", f"Resource '{call.segments[1]}' does not exist or "
                               "one of its queried reference-property objects are not present.")
            body = _render_user(user, select)
        return _json(200, {"@odata.context": _context(self.base_url, "users", select) + "/$entity", **body})

    def _transitive_members(self, call: _Call) -> StubResponse:
        # graph/api/group-list-transitivemembers + graph/aad-advanced-queries: an OData cast is an advanced query.
        _allow_options(call, {"$select", "$filter", "$top", "$count", "$skiptoken"})
        if not (call.advanced and call.count):
            raise _Refused(400, "Request_UnsupportedQuery",
                           "The OData cast to microsoft.graph.user is an advanced query: it needs the header "
                           "'ConsistencyLevel: eventual' and '$count=true'.")
        group_id = call.segments[1]
        select = _select(call)
        filters = _user_filter(call)
        with self._lock:
            if group_id.lower() not in self._groups:
                raise _Refused(404, "Request_ResourceNotFound", f"Resource '{group_id}' does not exist or one of "
                               "its queried reference-property objects are not present.")
            view = self._users_view(filters, group_id.lower())
            return self._page(call, view, f"members|{group_id.lower()}|{sorted(filters.items())}",
                              _context(self.base_url, "users", select), lambda u: _render_user(u, select))

    def _users_view(self, filters: Mapping[str, Any], group_id: str | None = None) -> list[GraphUser]:
        """The users a query lists, built once per change of the directory (callers hold the lock)."""
        if not filters and group_id is None:
            return self._user_list
        key = (group_id, tuple(sorted(filters.items())))
        cached = self._views.get(key)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        source = self._user_list if group_id is None else self._transitive_users(group_id)
        view = [u for u in source if _matches(u, filters)] if filters else source
        self._views[key] = (self._version, view)
        return view

    def _transitive_users(self, group_id: str) -> list[GraphUser]:
        key = (group_id, ())
        cached = self._views.get(key)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        users: dict[str, GraphUser] = {}
        seen = {group_id}
        queue = deque([group_id])
        while queue:
            for member in self._groups[queue.popleft()].members:
                kind = self._objects.get(member)
                if kind == "user":
                    users.setdefault(member, self._users[member])
                elif kind == "group" and member not in seen:
                    seen.add(member)
                    queue.append(member)
        view = list(users.values())
        self._views[key] = (self._version, view)
        return view

    def _page(self, call: _Call, items: Sequence[Any], route_key: str, context: str,
              render: Callable[[Any], dict[str, Any]]) -> StubResponse:
        top = _top(call)
        offset = _skiptoken_offset(call.query.get("$skiptoken"), route_key)
        body: dict[str, Any] = {"@odata.context": context}
        if call.count:
            body["@odata.count"] = len(items)
        if offset + top < len(items):
            pairs = [(k, v) for k, v in call.pairs if k != "$skiptoken"]
            pairs.append(("$skiptoken", _skiptoken(route_key, offset + top)))
            path = "/".join(quote(s, safe="") for s in call.segments)
            body["@odata.nextLink"] = f"{self.base_url}/{path}?{urlencode(pairs, quote_via=quote, safe='$,')}"
        body["value"] = [render(item) for item in items[offset:offset + top]]
        return _json(200, body)

    # --- Teams routes ------------------------------------------------------------------------------------------------
    def _teams_user(self, id_or_upn: str) -> GraphUser:
        user = self._find_user(id_or_upn)
        if user is None:
            raise _Refused(404, "NotFound", f"User '{id_or_upn}' was not found.")
        if not user.licensed:
            raise _Refused(404, "NotFound", f"User '{id_or_upn}' has no Microsoft Teams license: Teams cannot "
                           "find their personal scope.")
        return user

    def _install(self, call: _Call) -> StubResponse:
        # graph/api/userteamwork-post-installedapps
        try:
            body = json.loads(call.body or b"null")
        except ValueError:
            raise _Refused(400, "BadRequest", "The request body is not valid JSON.") from None
        bind = body.get("teamsApp@odata.bind") if isinstance(body, dict) else None
        catalog_id = self._bound_catalog_id(bind)
        with self._lock:
            user = self._teams_user(call.segments[1])
            app = self._catalog.get(catalog_id)
            if app is None:
                raise _Refused(404, "NotFound", f"App '{catalog_id}' was not found in the tenant's app catalog.")
            if user.install_blocked:
                raise _Refused(403, "Forbidden", f"The app '{app.display_name}' is blocked for this user by the "
                               "tenant's app permission policy.")
            if (user.id, app.id) in self._installs:
                raise _Refused(409, "Conflict", "The app is already installed for this user.")
            installation = self._record_install(user, app)
            self._installs_made += 1
        self._schedule(self._conversation_update(user, app, installation))
        return StubResponse(201, None)

    def _bound_catalog_id(self, bind: Any) -> str:
        if not isinstance(bind, str):
            raise _Refused(400, "BadRequest", "The request body needs 'teamsApp@odata.bind'.")
        for base in (self.base_url, REAL_BASE_URL):
            prefix = f"{base}/appCatalogs/teamsApps/"
            if bind.startswith(prefix) and bind[len(prefix):] and "/" not in bind[len(prefix):]:
                return unquote(bind[len(prefix):])
        raise _Refused(400, "BadRequest", f"'teamsApp@odata.bind' must be '{REAL_BASE_URL}/appCatalogs/teamsApps/"
                       f"{{id}}' (or the same under this stub's base URL), not {bind!r}.")

    def _record_install(self, user: GraphUser, app: CatalogApp) -> Installation:
        # An installation id is base64 of "{user id}##{catalog id}" (the ids in the list page's example decode so).
        installation_id = base64.b64encode(f"{user.id}##{app.id}".encode()).decode()
        installation = Installation(installation_id, user.id, app.id, _chat_id(user, app), _utc_now() + "Z")
        self._installs[(user.id, app.id)] = installation
        self._installations[installation_id] = installation
        self._by_user_installs[user.id].append(installation)
        return installation

    def _list_installed(self, call: _Call) -> StubResponse:
        # graph/api/userteamwork-list-installedapps
        _allow_options(call, {"$expand", "$filter", "$select"})
        expand = [e.strip() for e in call.query.get("$expand", "").split(",") if e.strip()]
        if any(e != "teamsApp" for e in expand):
            raise _Refused(400, "BadRequest", f"Only teamsApp can be expanded here, not {expand}.")
        try:
            filters = _filter_by(call.query["$filter"], {"teamsApp/id": str, "teamsApp/externalId": str}) \
                if "$filter" in call.query else {}
        except UnsupportedFilter as exc:
            raise _Refused(400, "BadRequest", f"Invalid filter clause: {exc}.") from None
        with self._lock:
            user = self._teams_user(call.segments[1])
            value = []
            for installation in self._by_user_installs.get(user.id, ()):
                app = self._catalog[installation.catalog_id]
                if filters.get("teamsApp/id", app.id) != app.id or \
                        filters.get("teamsApp/externalId", app.external_id) != app.external_id:
                    continue
                item: dict[str, Any] = {"id": installation.id}
                if expand:
                    item["teamsApp"] = app.json()
                value.append(item)
        context = f"{self.base_url}/$metadata#users('{user.id}')/teamwork/installedApps"
        return _json(200, {"@odata.context": context + ("(teamsApp())" if expand else ""), "value": value})

    def _chat(self, call: _Call) -> StubResponse:
        # graph/api/userscopeteamsappinstallation-get-chat
        with self._lock:
            user = self._teams_user(call.segments[1])
            installation = self._installations.get(call.segments[4])
            if installation is None or installation.user_id != user.id:
                raise _Refused(404, "NotFound", f"Installation '{call.segments[4]}' was not found for this user.")
        return _json(200, {
            "@odata.context": f"{self.base_url}/$metadata#chats/$entity", "id": installation.chat_id,
            "topic": None, "createdDateTime": installation.created, "lastUpdatedDateTime": installation.created,
            "chatType": "oneOnOne", "tenantId": self.tenant_id, "onlineMeetingInfo": None, "viewpoint": None,
            "webUrl": f"https://teams.microsoft.com/l/chat/{quote(installation.chat_id, safe='')}/0"
                      f"?tenantId={self.tenant_id}"})

    def _list_catalog(self, call: _Call) -> StubResponse:
        # graph/api/appcatalogs-list-teamsapps: the org's apps carry the manifest id as externalId
        _allow_options(call, {"$filter", "$select", "$expand"})
        try:
            filters = _filter_by(call.query["$filter"], {"id": str, "externalId": str, "displayName": str,
                                                         "distributionMethod": str}) \
                if "$filter" in call.query else {}
        except UnsupportedFilter as exc:
            raise _Refused(400, "BadRequest", f"Invalid filter clause: {exc}.") from None
        with self._lock:
            value = [app.json() for app in self._catalog.values()
                     if all(app.json()[name] == wanted for name, wanted in filters.items())]
        return _json(200, {"@odata.context": f"{self.base_url}/$metadata#appCatalogs/teamsApps", "value": value})

    def _find_user(self, id_or_upn: str) -> GraphUser | None:
        key = id_or_upn.lower()
        return self._users.get(key) or self._by_upn.get(key)


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.fault = GraphFault(status, code, message)


def any_issuer(*issuers: TokenClaims) -> TokenClaims:
    """Claims from the first issuer that knows the token (a client-credentials stub and a managed identity)."""
    def claims(token: str) -> Mapping[str, Any] | None:
        return next((c for c in (issuer(token) for issuer in issuers) if c is not None), None)
    return claims


def _chat_id(user: GraphUser, app: CatalogApp) -> str:
    return f"19:{user.id}_{app.bot_id}@unq.gbl.spaces"


def _json(status: int, body: dict[str, Any]) -> StubResponse:
    return StubResponse(status, body, {"Content-Type": "application/json;odata.metadata=minimal;"
                                                       "odata.streaming=true;IEEE754Compatible=false;charset=utf-8"})


def _context(base_url: str, entity_set: str, select: Sequence[str]) -> str:
    return f"{base_url}/$metadata#{entity_set}({','.join(select)})"


def _allow_options(call: _Call, allowed: set[str]) -> None:
    unknown = sorted(k for k in call.query if k.startswith("$") and k not in allowed)
    if unknown:
        raise _Refused(400, "Request_UnsupportedQuery", f"Unsupported query option(s) here: {', '.join(unknown)}.")


def _select(call: _Call) -> tuple[str, ...]:
    if "$select" not in call.query:
        return _DEFAULT_USER_SELECT
    canonical = {name.lower(): name for name in _USER_PROPERTIES}
    chosen = []
    for raw in call.query["$select"].split(","):
        name = canonical.get(raw.strip().lower())
        if name is None:
            raise _Refused(400, "Request_BadRequest",
                           f"Could not find a property named '{raw.strip()}' on type 'microsoft.graph.user'.")
        chosen.append(name)
    return tuple(chosen)


def _user_filter(call: _Call) -> dict[str, Any]:
    if "$filter" not in call.query:
        return {}
    try:
        filters = _filter_by(call.query["$filter"], _USER_FILTERS)
    except UnsupportedFilter as exc:
        raise _Refused(400, "Request_UnsupportedQuery", f"Unsupported or invalid query filter clause specified "
                       f"for resource 'User': {exc}.") from None
    return filters


def _matches(user: GraphUser, filters: Mapping[str, Any]) -> bool:
    if "accountEnabled" in filters and user.account_enabled != filters["accountEnabled"]:
        return False
    return "userType" not in filters or user.user_type.lower() == filters["userType"].lower()


def _render_user(user: GraphUser, select: Sequence[str]) -> dict[str, Any]:
    return {name: user.property(name) for name in select}


def _top(call: _Call) -> int:
    raw = call.query.get("$top")
    if raw is None:
        return DEFAULT_TOP
    try:
        top = int(raw)
    except ValueError:
        top = 0
    if not 1 <= top <= MAX_TOP:
        raise _Refused(400, "Request_BadRequest",
                       f"Invalid page size specified: '{raw}'. Must be between 1 and {MAX_TOP} inclusive.")
    return top


def _skiptoken(route_key: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{offset}|{route_key}".encode()).decode().rstrip("=")


def _skiptoken_offset(token: str | None, route_key: str) -> int:
    if token is None:
        return 0
    try:
        offset, _, key = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().partition("|")
        if key == route_key and int(offset) >= 0:
            return int(offset)
    except ValueError:
        pass
    raise _Refused(400, "Request_BadRequest", "The $skiptoken is not valid for this query.")
