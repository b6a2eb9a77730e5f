"""/api/portal/{*path}: the authors' page and its API.

- `""`, `index.html`, `portal.js`, `portal.css`: the page's files (`page/`), to anyone: they hold no data.
  Easy Auth sends a browser that is not signed in to Entra ID's sign-in first.
- `api/...`: the notify API for a signed-in author (`signin`), within their role (`policy`), from the page
  itself (`forgery`). Every change is recorded in the notification's audit trail with the author's name.

  GET    api/me                          who is signed in, their roles and audiences
  GET    api/notify?limit&after&state&mine=1   the notifications, newest first
  POST   api/notify                      send, schedule or preview (`dryRun`) a notification
  GET    api/notify/{id}                 its status, author and audit trail
  PATCH  api/notify/{id}                 edit it          DELETE api/notify/{id}   cancel it
  POST   api/notify/{id}/recall          recall it
  GET    api/notify/{id}/report | audit | answers   CSV: recipients, audit trail, survey answers
  GET    api/teams                       the teams the bot is installed in
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import azure.functions as func

from shared_code.notifications import api
from shared_code.notifications.after_send import reports
from shared_code.plumbing import errors, http_edge
from shared_code.plumbing.settings import Settings
from shared_code.portal import forgery, policy
from shared_code.portal.signin import Author, IdTokenCheck, signed_in

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices

# The page may be framed by Teams (a personal tab) and by itself, and loads nothing from elsewhere.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'self' https://teams.microsoft.com https://*.teams.microsoft.com "
                               "https://*.cloud.microsoft https://*.office.com",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
API_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
FILES = {"": ("index.html", "text/html"), "index.html": ("index.html", "text/html"),
         "portal.js": ("portal.js", "text/javascript"), "portal.css": ("portal.css", "text/css")}


@functools.lru_cache(maxsize=1)
def _id_tokens(settings: Settings) -> IdTokenCheck | None:
    """One check per process and settings: it caches Entra's signing keys (safe to lose)."""
    return None if settings.local_mode else IdTokenCheck(settings)


def handle(req: func.HttpRequest, services: NotificationServices) -> func.HttpResponse:
    path = (req.route_params.get("path") or "").strip("/")
    if not path and not urlsplit(req.url).path.endswith("/"):
        # /api/portal: the page's files are relative to /api/portal/
        return func.HttpResponse(status_code=308, headers={"Location": urlsplit(req.url).path + "/"})
    if not path.startswith("api/") and path != "api":
        return _file(path, req.method.upper())
    return http_edge.respond(lambda: _api(req, path[len("api/"):], services))


def _file(path: str, method: str) -> func.HttpResponse:
    if method not in ("GET", "HEAD"):
        return http_edge.error_response(errors.BadInput("the page's files are read with GET"))
    if path not in FILES:
        return http_edge.error_response(errors.NotFound("no such file: the page is at /api/portal/"))
    name, mimetype = FILES[path]
    body = resources.files(__package__).joinpath("page", name).read_bytes()
    return func.HttpResponse(body if method == "GET" else b"", status_code=200, mimetype=mimetype, charset="utf-8",
                             headers=PAGE_HEADERS)


def _api(req: func.HttpRequest, path: str, services: NotificationServices) -> func.HttpResponse:
    headers = {k.lower(): v for k, v in req.headers.items()}
    author = signed_in(headers, services.settings, _id_tokens(services.settings))
    forgery.check_same_site(headers, req.url)
    method, parts = req.method.upper(), [p for p in path.split("/") if p]
    if parts == ["me"] and method == "GET":
        return _json(200, {**author.to_json(), "audiences": policy.allowed_audiences(author, services.settings)})
    policy.check_reader(author)
    if parts == ["teams"] and method == "GET":
        return _json(*_answer(api.teams(services)))
    if parts[:1] != ["notify"] or len(parts) > 3:
        raise errors.NotFound("no such API: see /api/portal/api/notify")
    if len(parts) == 1:
        if method == "GET":
            return _json(*_answer(_list(req, author, services)))
        if method == "POST":
            data = http_edge.read_json_object(req, services.settings.max_request_bytes)
            policy.check_send(author, data, services.settings)
            return _json(*_answer(api.traced_notify(lambda: data, services, request_url=req.url, actor=author.actor)))
        raise errors.BadInput("use GET or POST on api/notify")
    notification_id, action = parts[1], (parts[2] if len(parts) == 3 else "")
    if method == "GET" and not action:
        return _json(*_answer(api.status(notification_id, services)))
    if method == "GET" and action in reports.NOTIFICATION_REPORTS:
        return http_edge.csv_response(*reports.for_notification(action, notification_id, services))
    created_by = api.created_by(notification_id, services)  # and 404 for an unknown id
    if method == "GET" and action == "answers":
        body = reports.survey_answers_report(notification_id, services)
        return http_edge.csv_response(body, f"{notification_id}-answers.csv")
    if method == "PATCH" and not action:
        policy.check_change(author, created_by)
        data = http_edge.read_json_object(req, services.settings.max_request_bytes)
        return _json(*_answer(api.edit(notification_id, data, services, actor=author.actor)))
    if method == "DELETE" and not action:
        policy.check_change(author, created_by)
        return _json(*_answer(api.cancel(notification_id, services, actor=author.actor)))
    if method == "POST" and action == "recall":
        policy.check_change(author, created_by)
        return _json(*_answer(api.recall(notification_id, services, actor=author.actor)))
    raise errors.BadInput("use GET, PATCH or DELETE on api/notify/{id}, POST on .../recall, GET on .../report")


def _list(req: func.HttpRequest, author: Author, services: NotificationServices) -> api.Answer:
    mine = req.params.get("mine") in ("1", "true")
    return api.list_notifications(services, req.params, author_id=author.id if mine else None)


def _answer(answer: api.Answer) -> tuple[int, dict[str, Any]]:
    return answer.status, answer.body


def _json(status: int, body: dict[str, Any]) -> func.HttpResponse:
    return http_edge.json_response(status, body, API_HEADERS)


__all__ = ["handle"]
