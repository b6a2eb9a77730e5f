"""Outbound credentials: the bot's client-credentials token, and which serviceUrls may receive it."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
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
                 clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
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
        tenant = self._settings.microsoft_app_tenant_id
        if self._settings.microsoft_app_type == "SingleTenant" and tenant and login == MULTI_TENANT_LOGIN_URL:
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
        url = self.token_url
        form = {
            "grant_type": "client_credentials",
            "client_id": self._settings.microsoft_app_id,
            "client_secret": self._settings.microsoft_app_password,
            "scope": self._settings.to_channel_from_bot_oauth_scope,
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
        # Short-lived tokens (tests, odd issuers) still get cached for half their life.
        margin = min(REFRESH_BEFORE_EXPIRY_SECONDS, expires_in / 2)
        log.info("fetched a bot token from %s, valid for %.0f s", url, expires_in)
        return _Token(value, started + expires_in - margin)

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
