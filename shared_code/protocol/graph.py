"""Microsoft Graph, the few calls that reach people who never wrote to the bot.

Directory reads (a group's users, the tenant's users, one user) and the Teams app's proactive
installation for a user (install, find the installation, its chat). Like the connector, one call is
one try: the caller paces every call against Graph's limits (a shared budget per kind of call) and
decides what a 429 means for its work. Facts and routes: PROTOCOL.md, "Microsoft Graph".

OData filters are built here from values this module checks first (object ids are GUIDs, catalog ids
are plain ids) and quoted by `odata_string`; no caller passes filter text. A `@odata.nextLink` is
followed only when it points under `GraphBaseUrl`, so the token never goes anywhere else.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import quote

import requests

from shared_code.plumbing.errors import AppError, AppRejected, BadInput, NotFound, Throttled, Upstream

log = logging.getLogger(__name__)

HTTP_TIMEOUT = (3.05, 20.0)
MAX_PAGE_SIZE = 999  # $top for users and transitiveMembers
USER_FIELDS = "id,userPrincipalName,displayName"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# A catalog id is a GUID in the org catalog; other ids Graph hands out are base64-ish: letters,
# digits and a few marks. Anything else never reaches a URL or a filter.
GRAPH_ID = re.compile(r"^[A-Za-z0-9=+/_.:@-]{1,256}$")
UPN = re.compile(r"^[^\s@'\"/\\?#%]{1,113}@[A-Za-z0-9.-]{1,255}$")


class CallKind(StrEnum):
    """Graph's Teams limits are per kind of call (Teams service limits, per app per tenant): each kind has
    its own budget."""

    INSTALL = "install"  # POST /users/{id}/teamwork/installedApps
    INSTALLED_APPS = "installed_apps"  # GET /users/{id}/teamwork/installedApps[/{id}/chat]
    READ = "read"  # every other GET: users, group members, the app catalog


# The application permission each call needs, named in the error when Graph refuses for lack of it.
PERMISSION = {
    CallKind.INSTALL: "TeamsAppInstallation.ReadWriteSelfForUser.All",
    CallKind.INSTALLED_APPS: "TeamsAppInstallation.ReadWriteSelfForUser.All",
}
GROUP_PERMISSION = "GroupMember.Read.All"
USERS_PERMISSION = "User.Read.All"
CATALOG_PERMISSION = "AppCatalog.Read.All (or set TeamsAppCatalogId)"


class Bearer(Protocol):
    def bearer(self) -> str | None: ...

    def invalidate(self, rejected: str | None = None) -> None: ...


class NoBearer:
    """Local mode: no token is sent, as with the connector."""

    def bearer(self) -> str | None:
        return None

    def invalidate(self, rejected: str | None = None) -> None:
        pass


class PermissionMissing(AppRejected):
    """Graph refused the app for lack of an application permission: an administrator must grant it."""

    code = "graph_permission_missing"


class InstallRefused(AppError):
    """The app cannot be installed for this user: blocked by policy (403) or no Teams licence (404).
    Never retried: the user is skipped with the code."""

    status = 403
    code = "install_blocked"


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    id: str  # the Entra object id
    upn: str = ""
    name: str = ""


@dataclass(frozen=True, slots=True)
class DirectoryPage:
    users: tuple[DirectoryUser, ...]
    next_link: str | None  # None after the last page


def odata_string(value: str) -> str:
    """An OData string literal: quoted, single quotes doubled (the OData ABNF's escape)."""
    return "'" + value.replace("'", "''") + "'"


def is_object_id(value: str) -> bool:
    return bool(GUID.match(value))


def check_object_id(value: str, what: str) -> str:
    if not is_object_id(value):
        raise BadInput(f"{what} must be an Entra object id (a GUID), not {value!r:.60}")
    return value.lower()


def check_person(value: str) -> str:
    """An object id or a user principal name, as a person in a `users` list."""
    if is_object_id(value):
        return value.lower()
    if UPN.match(value):
        return value.lower()
    raise BadInput(f"each of users must be an Entra object id or a user principal name, not {value!r:.60}")


class GraphClient:
    def __init__(self, base_url: str, credentials: Bearer, session: requests.Session, *,
                 timeout: tuple[float, float] = HTTP_TIMEOUT, sleep: Callable[[float], None] = time.sleep) -> None:
        self._base = base_url.rstrip("/")
        self._credentials = credentials
        self._session = session
        self._timeout = timeout
        self._sleep = sleep

    @property
    def base_url(self) -> str:
        return self._base

    # --- the directory ------------------------------------------------------------------------
    def group_users(self, group_id: str, *, next_link: str | None = None, page_size: int = MAX_PAGE_SIZE) -> DirectoryPage:
        """One page of the group's users, nested groups included (transitiveMembers, cast to users: other
        groups, devices and contacts are left out by Graph). The cast needs ConsistencyLevel and $count."""
        url = self._checked(next_link) or f"{self._base}/groups/{quote(check_object_id(group_id, 'group'))}/transitiveMembers/microsoft.graph.user"
        params = None if next_link else {"$select": USER_FIELDS, "$count": "true", "$top": str(_top(page_size))}
        data = self._get(url, params, permission=GROUP_PERMISSION, consistency=True, what="the group")
        return _page(data, self._follow(data))

    def tenant_users(self, *, include_guests: bool = False, next_link: str | None = None,
                     page_size: int = MAX_PAGE_SIZE) -> DirectoryPage:
        """One page of the tenant's enabled users: members only, or guests too."""
        wanted = "accountEnabled eq true" if include_guests else "accountEnabled eq true and userType eq 'Member'"
        params = None if next_link else {"$select": USER_FIELDS, "$filter": wanted, "$top": str(_top(page_size))}
        data = self._get(self._checked(next_link) or f"{self._base}/users", params, permission=USERS_PERMISSION, what="the users")
        return _page(data, self._follow(data))

    def user(self, id_or_upn: str) -> DirectoryUser | None:
        """One user by object id or user principal name; None if the directory has none."""
        try:
            data = self._get(f"{self._base}/users/{quote(check_person(id_or_upn), safe='@')}", {"$select": USER_FIELDS},
                             permission=USERS_PERMISSION, what="the user")
        except NotFound:
            return None
        return _user(data)

    # --- the Teams app ------------------------------------------------------------------------
    def catalog_id(self, external_id: str) -> str | None:
        """The app's id in the org catalog, from its manifest id; None when it is not published there."""
        data = self._get(f"{self._base}/appCatalogs/teamsApps",
                         {"$filter": f"externalId eq {odata_string(check_object_id(external_id, 'the app id'))}"},
                         permission=CATALOG_PERMISSION, what="the app catalog")
        apps = data.get("value") if isinstance(data.get("value"), list) else []
        ids = [a.get("id") for a in apps if isinstance(a, dict) and isinstance(a.get("id"), str)]
        return ids[0] if ids else None

    def install(self, user_id: str, catalog_id: str) -> bool:
        """Install the app for the user: True if installed now, False if it already was (409).
        InstallRefused when policy blocks it (403) or the user has no Teams (404)."""
        url = f"{self._base}/users/{quote(check_object_id(user_id, 'user'))}/teamwork/installedApps"
        body = {"teamsApp@odata.bind": f"{self._base}/appCatalogs/teamsApps/{quote(_graph_id(catalog_id))}"}
        try:
            self._request("POST", url, None, body, permission=PERMISSION[CallKind.INSTALL], what="the install")
        except _Refused as refused:
            if refused.status == 409:
                return False
            raise InstallRefused(
                "the app cannot be installed for this user (blocked by an app permission policy)" if refused.status == 403
                else "the user has no Teams (no licence, or not found)",
                code="install_blocked" if refused.status == 403 else "no_teams_license") from None
        return True

    def installation_id(self, user_id: str, catalog_id: str) -> str | None:
        url = f"{self._base}/users/{quote(check_object_id(user_id, 'user'))}/teamwork/installedApps"
        params = {"$expand": "teamsApp", "$filter": f"teamsApp/id eq {odata_string(_graph_id(catalog_id))}"}
        try:
            data = self._get(url, params, permission=PERMISSION[CallKind.INSTALLED_APPS], what="the installed apps")
        except NotFound:
            return None
        found = [a.get("id") for a in data.get("value") or [] if isinstance(a, dict) and isinstance(a.get("id"), str)]
        return found[0] if found else None

    def chat_id(self, user_id: str, installation_id: str) -> str:
        """The personal chat of the installation: its id is the Bot Framework conversation id."""
        url = (f"{self._base}/users/{quote(check_object_id(user_id, 'user'))}/teamwork/installedApps/"
               f"{quote(_graph_id(installation_id), safe='')}/chat")
        data = self._get(url, None, permission=PERMISSION[CallKind.INSTALLED_APPS], what="the chat")
        chat = data.get("id")
        if not isinstance(chat, str) or not chat:
            raise Upstream("Graph answered no chat id for the installation", code="graph_no_chat")
        return chat

    # --- HTTP -----------------------------------------------------------------------------------
    def _follow(self, data: dict[str, Any]) -> str | None:
        return self._checked(data.get("@odata.nextLink"))

    def _checked(self, link: Any) -> str | None:
        if link is None:
            return None
        if not isinstance(link, str) or not link.startswith(self._base + "/"):
            # The token goes to GraphBaseUrl only: a link elsewhere is never followed.
            raise Upstream("Graph's next page link does not point at GraphBaseUrl: not followed",
                           code="graph_bad_next_link", transient=False)
        return link

    def _get(self, url: str, params: dict[str, str] | None, *, permission: str, what: str,
             consistency: bool = False) -> dict[str, Any]:
        try:
            return self._request("GET", url, params, None, permission=permission, what=what, consistency=consistency)
        except _Refused as refused:
            if refused.status == 404:
                raise NotFound(f"Graph has no such thing: {what} ({refused.code or 'Request_ResourceNotFound'})") from None
            raise BadInput(f"Graph refused the request for {what}: {refused.code} {refused.message}"[:300]) from None

    def _request(self, method: str, url: str, params: dict[str, str] | None, body: dict[str, Any] | None, *,
                 permission: str, what: str, consistency: bool = False) -> dict[str, Any]:
        refreshed = False
        while True:
            headers = {"ConsistencyLevel": "eventual"} if consistency else {}
            authorization = self._credentials.bearer()
            if authorization:
                headers["Authorization"] = authorization
            try:
                response = self._session.request(method, url, params=params, json=body, headers=headers,
                                                 timeout=self._timeout)
            except requests.Timeout:
                raise Upstream(f"Graph did not answer in time ({what})", code="graph_timeout") from None
            except requests.RequestException as exc:
                raise Upstream(f"could not reach Graph ({type(exc).__name__}): check GraphBaseUrl",
                               code="graph_unreachable") from None
            status = response.status_code
            if status in (200, 201, 204):
                try:
                    data = response.json() if response.content else {}
                except ValueError:
                    data = {}
                return data if isinstance(data, dict) else {}
            code, message = _error_body(response)
            if status == 401 and not refreshed and authorization:
                self._credentials.invalidate(authorization)
                refreshed = True
                continue
            if status == 401:
                raise AppRejected(f"Graph refused the app's token ({code or 'InvalidAuthenticationToken'}): check the "
                                  "app's identity and that its token is for https://graph.microsoft.com",
                                  code="graph_token_rejected")
            # Directory routes say Authorization_RequestDenied; Teams routes a Forbidden "Missing role permissions".
            if status == 403 and (code == "Authorization_RequestDenied" or "missing role permission" in message.lower()):
                raise PermissionMissing(f"Graph refused {what}: the app lacks the application permission {permission} "
                                        "(grant it and give admin consent; README, \"Reaching the whole organisation\")")
            if status in (429, 503, 504):
                raise Throttled(f"Graph is throttling ({status})", retry_after=_retry_after(response), status=status)
            if status in (400, 403, 404, 409):
                raise _Refused(status, code, message)
            log.warning("Graph answered %s %s for %s", status, code or "-", what)
            raise Upstream(f"Graph failed ({status}) on {what}", code=f"graph_http_{status}", transient=status >= 500)


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


def _graph_id(value: str) -> str:
    if not GRAPH_ID.match(value or ""):
        raise BadInput(f"not a Graph id: {value!r:.60}")
    return value


def _top(page_size: int) -> int:
    return max(1, min(MAX_PAGE_SIZE, page_size))


def _user(data: Any) -> DirectoryUser | None:
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not is_object_id(data["id"]):
        return None
    return DirectoryUser(data["id"].lower(), str(data.get("userPrincipalName") or ""), str(data.get("displayName") or ""))


def _page(data: dict[str, Any], next_link: str | None) -> DirectoryPage:
    values = data.get("value") if isinstance(data.get("value"), list) else []
    users = tuple(u for u in map(_user, values) if u is not None)
    return DirectoryPage(users, next_link)


def _error_body(response: requests.Response) -> tuple[str, str]:
    try:
        data = response.json()
    except ValueError:
        return "", ""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or ""), str(error.get("message") or "")[:200]


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None
