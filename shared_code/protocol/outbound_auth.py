"""Outbound credentials: the bot's token (client credentials, or its managed identity), and which serviceUrls may receive it."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from shared_code.plumbing.errors import ConfigError, UntrustedServiceUrl, Upstream
from shared_code.plumbing.settings import MULTI_TENANT_LOGIN_URL, Settings

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth2/v2.0/token"
SINGLE_TENANT_LOGIN_TEMPLATE = "https://login.microsoftonline.com/{tenant}"
REFRESH_BEFORE_EXPIRY_SECONDS = 300  # what MSAL and the old SDK do
HTTP_TIMEOUT = (3.05, 10.0)  # (connect, read)
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Token endpoint answers that no retry can fix: the operator must change a setting.
_CONFIG_ERRORS = {
    "invalid_client": "check MicrosoftAppId and MicrosoftAppPassword (the secret may be wrong or expired)",
    "unauthorized_client": "check MicrosoftAppId (the app is unknown in this tenant) and MicrosoftAppType/MicrosoftAppTenantId",
    "invalid_scope": "check ToChannelFromBotOAuthScope",
}
# The Functions / App Service managed-identity endpoint (PROTOCOL.md): the platform sets both variables
# for the worker when the app has an identity; IDENTITY_HEADER guards the endpoint and is never logged.
IDENTITY_ENDPOINT = "IDENTITY_ENDPOINT"
IDENTITY_HEADER = "IDENTITY_HEADER"
IDENTITY_API_VERSION = "2019-08-01"


def normalize_service_url(url: str) -> tuple[str, str, int, str] | None:
    """(scheme, host, port, path without trailing slash) or None if `url` is no plain http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except (ValueError, AttributeError):
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme], parts.path.rstrip("/")


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float  # clock time after which we fetch a new one


class OutboundCredentials:
    """Hands out `Bearer <token>` for connector calls: one cached token per process, one fetch at a time."""

    def __init__(self, settings: Settings, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time, environ: Mapping[str, str] | None = None, *,
                 scope: str = "", tenant: str = "") -> None:
        self._settings = settings
        # The bot's token for the channel by default; Microsoft Graph's (GRAPH_SCOPE) in `tenant` for the
        # organisation's audiences: same grant, same cache rules, another resource.
        self._scope = scope or settings.to_channel_from_bot_oauth_scope
        self._tenant = tenant or settings.microsoft_app_tenant_id
        # Platform variables, not app settings: read once, like the settings.
        environ = os.environ if environ is None else environ
        self._identity = (environ.get(IDENTITY_ENDPOINT, ""), environ.get(IDENTITY_HEADER, ""))
        self._session = session or requests.Session()
        self._clock = clock
        self._lock = threading.Lock()
        self._token: _Token | None = None
        # Counts finished fetch attempts; callers that queued behind a failed fetch share its error
        # instead of each retrying, one by one, against an endpoint that just failed.
        self._attempts = 0
        self._last_failure: tuple[int, ConfigError | Upstream] | None = None
        self._trusted = frozenset(n for n in map(normalize_service_url, settings.trusted_service_urls) if n)

    @property
    def token_url(self) -> str:
        login = self._settings.to_channel_from_bot_login_url.rstrip("/")
        tenant = self._tenant
        # Graph's token always comes from the tenant whose directory it reads, whatever the bot's type.
        tenant_bound = self._settings.microsoft_app_type == "SingleTenant" or self._scope != self._settings.to_channel_from_bot_oauth_scope
        if tenant_bound and tenant and login == MULTI_TENANT_LOGIN_URL:
            login = SINGLE_TENANT_LOGIN_TEMPLATE.format(tenant=tenant)
        return login + TOKEN_PATH

    def is_trusted(self, service_url: str) -> bool:
        """Whether TrustedServiceUrls lists `service_url` (same scheme, host, port and path)."""
        normalized = normalize_service_url(service_url)
        return normalized is not None and normalized in self._trusted

    def authorization(self, service_url: str, *, trusted: bool) -> str | None:
        """`Bearer <token>` for a call to `service_url`, or None in local mode (no app id: send no token)."""
        if self._settings.local_mode:
            return None
        if not trusted and not self.is_trusted(service_url):
            raise UntrustedServiceUrl(
                f"refusing to send the bot's token to {service_url!r}: it did not come from an authenticated "
                "activity and is not in TrustedServiceUrls")
        return f"Bearer {self._current_token()}"

    def bearer(self) -> str | None:
        """`Bearer <token>` for a service named by the settings (Microsoft Graph), None in local mode."""
        if self._settings.local_mode:
            return None
        return f"Bearer {self._current_token()}"

    def invalidate(self, rejected: str | None = None) -> None:
        """Forget the cached token (the connector answered 401): the next call fetches a new one.

        Pass the Authorization value the connector refused as `rejected` when many sends may fail
        at once: the cache is then dropped only if it still holds that token, so a late 401 does
        not throw away the fresh token another thread already fetched.
        """
        with self._lock:
            if rejected is None or (self._token is not None and rejected.removeprefix("Bearer ") == self._token.value):
                self._token = None

    def _current_token(self) -> str:
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token.value
        seen_attempts = self._attempts
        with self._lock:
            token = self._token
            if token is not None and self._clock() < token.refresh_at:
                return token.value  # another thread fetched it while we waited
            failure = self._last_failure
            if failure is not None and failure[0] > seen_attempts:
                raise type(failure[1])(failure[1].message)  # the fetch we queued behind failed: share its answer
            try:
                self._token = self._fetch()
            except (ConfigError, Upstream) as exc:
                self._attempts += 1
                self._last_failure = (self._attempts, exc)
                raise
            self._attempts += 1
            self._last_failure = None
            return self._token.value

    def _fetch(self) -> _Token:
        if self._settings.microsoft_app_type == "UserAssignedMSI":
            return self._fetch_managed_identity()
        url = self.token_url
        form = {
            "grant_type": "client_credentials",
            "client_id": self._settings.microsoft_app_id,
            "client_secret": self._settings.microsoft_app_password,
            "scope": self._scope,
        }
        started = self._clock()
        try:
            response = self._session.post(url, data=form, timeout=HTTP_TIMEOUT)
        except requests.RequestException as exc:
            raise Upstream(f"token endpoint {url} unreachable ({type(exc).__name__}): "
                           "check ToChannelFromBotLoginUrl and the network") from None
        if response.status_code != 200:
            raise self._error(url, response)
        try:
            body = response.json()
            value = body["access_token"]
            expires_in = float(body.get("expires_in", 3600))  # Azure AD v1 sends a string
        except (ValueError, KeyError, TypeError, AttributeError):
            raise Upstream(f"token endpoint {url} sent an unreadable answer: check ToChannelFromBotLoginUrl") from None
        if not isinstance(value, str) or not value or expires_in <= 0:
            raise Upstream(f"token endpoint {url} sent no usable token: check ToChannelFromBotLoginUrl")
        log.info("fetched a bot token from %s, valid for %.0f s", url, expires_in)
        return _Token(value, _refresh_at(started, expires_in))

    def _fetch_managed_identity(self) -> _Token:
        """The token of the user-assigned identity whose client id is MicrosoftAppId, from the platform's endpoint."""
        endpoint, header = self._identity
        client_id = self._settings.microsoft_app_id
        if not endpoint or not header:
            raise ConfigError(
                "MicrosoftAppType is UserAssignedMSI but IDENTITY_ENDPOINT/IDENTITY_HEADER are not set: this "
                "process has no managed identity. Assign the user-assigned identity to the Function App, or use "
                "SingleTenant with MicrosoftAppPassword off Azure")
        resource = self._scope.removesuffix("/.default")
        params = {"resource": resource, "api-version": IDENTITY_API_VERSION, "client_id": client_id}
        started = self._clock()
        try:
            response = self._session.get(endpoint, params=params, headers={"X-IDENTITY-HEADER": header},
                                         timeout=HTTP_TIMEOUT)
        except requests.RequestException as exc:
            raise Upstream(f"managed-identity endpoint unreachable ({type(exc).__name__}): the platform's "
                           "IDENTITY_ENDPOINT did not answer") from None
        if response.status_code != 200:
            raise _identity_error(response, client_id, resource)
        try:
            body = response.json()
            value = body["access_token"]
            expires_in = float(body["expires_on"]) - started  # epoch seconds, as a string
        except (ValueError, KeyError, TypeError, AttributeError):
            raise Upstream("managed-identity endpoint sent an unreadable answer (no access_token/expires_on)") from None
        if not isinstance(value, str) or not value or expires_in <= 0:
            raise Upstream("managed-identity endpoint sent no usable token")
        log.info("fetched a bot token from the managed-identity endpoint, valid for %.0f s", expires_in)
        return _Token(value, _refresh_at(started, expires_in))

    def _error(self, url: str, response: requests.Response) -> Exception:
        try:
            body = response.json()
            error = body.get("error") if isinstance(body, dict) else None
            description = body.get("error_description", "") if isinstance(body, dict) else ""
        except ValueError:
            error, description = None, ""
        # Only the AADSTS code is quoted: descriptions can echo request details.
        codes = re.findall(r"AADSTS\d+", description if isinstance(description, str) else "")
        detail = f"HTTP {response.status_code}" + (f" {error}" if isinstance(error, str) else "") + \
            (f" ({codes[0]})" if codes else "")
        if isinstance(error, str) and error in _CONFIG_ERRORS:
            return ConfigError(f"token endpoint {url} refused the bot's credentials, {detail}: {_CONFIG_ERRORS[error]}")
        if codes and codes[0] == "AADSTS90002":  # tenant not found
            return ConfigError(f"token endpoint {url} does not know the tenant, {detail}: "
                               "check MicrosoftAppTenantId and ToChannelFromBotLoginUrl")
        return Upstream(f"token endpoint {url} failed, {detail}: check ToChannelFromBotLoginUrl "
                        "if this persists")


def _refresh_at(started: float, expires_in: float) -> float:
    # Short-lived tokens (tests, odd issuers) still get cached for half their life.
    return started + expires_in - min(REFRESH_BEFORE_EXPIRY_SECONDS, expires_in / 2)


def _identity_error(response: requests.Response, client_id: str, resource: str) -> Exception:
    """A refusal of the managed-identity endpoint, naming what the operator must change."""
    try:
        body = response.json()
        message = body.get("message") or body.get("error_description") or "" if isinstance(body, dict) else ""
    except ValueError:
        message = ""
    message = message if isinstance(message, str) else ""
    status = response.status_code
    codes = re.findall(r"AADSTS\d+", message)
    if status == 400 and re.search(r"(?i)no (user assigned|.*managed identity) .*found|identity not found", message):
        return ConfigError(
            f"managed-identity endpoint, HTTP 400: no identity with client id {client_id} is assigned to this app. "
            "Check MicrosoftAppId (the identity's client id) and that the identity is assigned to the Function App")
    if status == 400:
        return ConfigError(f"managed-identity endpoint refused resource {resource}, HTTP 400"
                           + (f" ({codes[0]})" if codes else "") + ": check ToChannelFromBotOAuthScope and MicrosoftAppId")
    if status in (401, 403):
        return ConfigError(f"managed-identity endpoint, HTTP {status}: it refused IDENTITY_HEADER; restart the app "
                           "so the platform sets IDENTITY_ENDPOINT and IDENTITY_HEADER again")
    return Upstream(f"managed-identity endpoint failed, HTTP {status}")
