"""Cross-site request forgery: the page's API is called with the session cookie Easy Auth set, which a
browser also attaches to a request another site makes it send. Two checks, both needed to act:
- the anti-forgery header `X-Portal-Request: 1`, which the page sends with every call: a form or an image
  cannot set a header, and a script of another origin can only after a CORS preflight this app never grants;
- `Origin` (sent with every cross-origin request and every POST, PATCH, DELETE) and `Sec-Fetch-Site`, when
  present, must say the request comes from the page's own origin.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from shared_code.plumbing.errors import Forbidden

HEADER = "x-portal-request"


def check_same_site(headers: Mapping[str, str], request_url: str) -> None:
    """Forbidden unless the request carries the page's header and comes from the page's origin. `headers`:
    lower-case names; `request_url`: the URL as the app was called (its origin is the page's)."""
    if headers.get(HEADER) != "1":
        raise Forbidden("this API answers the authors' page only (the anti-forgery header is missing)")
    fetch_site = headers.get("sec-fetch-site", "")
    if fetch_site and fetch_site not in ("same-origin", "none"):
        raise Forbidden(f"a request from another site ({fetch_site}) is refused")
    origin = headers.get("origin", "")
    if origin and origin != "null" and _origin(origin) != _origins(headers, request_url):
        raise Forbidden("a request from another origin is refused")
    if origin == "null":
        raise Forbidden("a request from an opaque origin is refused")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _origins(headers: Mapping[str, str], request_url: str) -> str:
    # Behind App Service's front end the worker sees the public host in the URL (or X-Forwarded-Host).
    forwarded = headers.get("x-forwarded-host", "")
    parts = urlsplit(request_url)
    scheme = headers.get("x-forwarded-proto", "") or parts.scheme
    return f"{scheme}://{forwarded or parts.netloc}".lower()


__all__ = ["HEADER", "check_same_site"]
