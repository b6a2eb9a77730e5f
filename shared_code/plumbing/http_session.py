"""An HTTP session for the app's outbound calls (channels and storage): environment read once, one pool.

requests reads the environment (proxies, CA bundle, .netrc) on every request; the app's outbound
calls are many and go to a handful of origins, so the session here reads it once per origin. Both the
connector (protocol.connector) and the storage clients' shared transport (storage.tables) use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter, Retry


class EnvironmentOnceSession(requests.Session):
    """A requests.Session that reads the environment's settings (proxies, CA bundle, .netrc) once per origin.

    requests reads them on every request (os.environ walked for *_proxy and no_proxy, the CA bundle
    variables, the .netrc file looked for): 16 % of a send's CPU in figure 2, and merging the session's
    empty cookies, params and auth into each request (isinstance checks against a typing Protocol,
    slow) as much again. The environment is the process's configuration, read once like the app's
    settings; a request that brings no cookies, params, auth or files, to a session that holds none,
    is prepared with exactly what requests would merge. Anything else goes requests' own way.
    """

    MAX_ORIGINS = 256  # serviceUrls are a handful per deployment; past this, settings are merged each time

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._netrc: dict[tuple[str, str], Any] = {}

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        if (request.cookies or request.auth or request.params or request.files or self.auth or self.params
                or len(self.cookies) or not isinstance(request.headers, Mapping)):
            return super().prepare_request(request)
        headers = requests.structures.CaseInsensitiveDict(self.headers)
        for name, value in request.headers.items():  # the request's win; None removes (merge_setting)
            if value is None:
                headers.pop(name, None)
            else:
                headers[name] = value
        prepared = requests.PreparedRequest()
        prepared.prepare(method=str(request.method).upper(), url=request.url, data=request.data, json=request.json,
                         headers=headers, params=None, auth=self._netrc_auth(str(request.url)),
                         cookies=requests.cookies.RequestsCookieJar(),
                         hooks=requests.sessions.merge_hooks(request.hooks, self.hooks))
        return prepared

    def _netrc_auth(self, url: str) -> Any:
        if not self.trust_env:
            return None
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        if key not in self._netrc:
            found = requests.utils.get_netrc_auth(url)
            if len(self._netrc) >= self.MAX_ORIGINS:
                return found
            self._netrc[key] = found
        return self._netrc[key]

    def merge_environment_settings(self, url: str, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> dict[str, Any]:
        if proxies or not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert)
        merged = self._environment.get(key)
        if merged is None:
            merged = super().merge_environment_settings(url, {}, stream, verify, cert)
            if len(self._environment) < self.MAX_ORIGINS:
                self._environment[key] = merged
        return dict(merged, proxies=dict(merged["proxies"]))  # the caller's to change


def pooled_session(pool_size: int, *, max_retries: Retry | int = 0) -> EnvironmentOnceSession:
    """A session whose keep-alive pool holds `pool_size` connections per origin (requests keeps 10 and
    drops the rest), for the threads that use it at once. `max_retries` is requests' own (0: the
    callers retry, each its own way)."""
    session = EnvironmentOnceSession()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=max_retries)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
