"""The host's HTTP front: /<routePrefix>/<route> to HTTP-triggered functions, and the admin routes."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from devhost.invocation import Function, InvocationFailed
from devhost.routes import RouteTemplate

log = logging.getLogger("devhost")

HTTP_REASON = "This function was programmatically called via the host APIs."
ALL_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")

# (function name, input text) -> (status, JSON body); the host runs non-HTTP functions on demand.
AdminRunner = Callable[[str, str], tuple[int, Any]]


@dataclass(frozen=True)
class HttpRoute:
    function: Function
    template: RouteTemplate
    methods: tuple[str, ...]

    @classmethod
    def of(cls, function: Function) -> HttpRoute:
        trigger = function.spec.trigger
        # Like the host: no route means the function name; no methods means every method.
        route = str(trigger.get("route") or function.name)
        methods = tuple(m.upper() for m in trigger.get("methods") or ALL_METHODS)
        try:
            template = RouteTemplate.parse(route)
        except ValueError as exc:
            raise ValueError(f"Function '{function.name}': route '{route}': {exc}") from exc
        return cls(function, template, methods)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
        return cls(status, json.dumps(payload).encode(), (("Content-Type", "application/json; charset=utf-8"), *headers))


def error(status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = (), **extra: Any) -> Reply:
    return Reply.json(status, {"error": {"code": code, "message": message, **extra}}, headers)


def to_reply(result: Any, function: str) -> Reply:
    """The function's return value as the worker turns it into an HTTP response."""
    if result is None:
        return Reply(204)
    if isinstance(result, (str, bytes)):
        result = func.HttpResponse(result)
    if not isinstance(result, func.HttpResponse):
        log.error("Function '%s' returned %s, not an HttpResponse", function, type(result).__name__)
        return error(500, "InvalidResult", "The function returned something that is not an HTTP response")
    headers = [(k, v) for k, v in result.headers.items()]
    if not any(k.lower() == "content-type" for k, _ in headers):
        mimetype = result.mimetype
        headers.append(("Content-Type", f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype))
    return Reply(result.status_code, result.get_body(), tuple(headers))


PLATFORM_AUTH_HEADERS = ("x-ms-client-principal", "x-ms-token-")


class Router:
    """Chooses the function for a request and runs it; knows nothing of sockets.

    authLevel function/admin is not enforced: every request is accepted, as `func start`
    does locally (keys are a concern of the deployed app, where the platform checks them).
    """

    def __init__(self, functions: list[Function], route_prefix: str, admin: AdminRunner,
                 sign_in: Mapping[str, str] | None = None) -> None:
        routes = [HttpRoute.of(f) for f in functions]
        self.sign_in = dict(sign_in) if sign_in is not None else None
        self.routes = sorted(routes, key=lambda r: r.template.precedence)
        self.prefix = "/" + route_prefix.strip("/") if route_prefix.strip("/") else ""
        self.admin = admin

    def handle(self, method: str, url: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Reply:
        if self.sign_in is not None:
            # App Service Authentication, as the platform runs it in front of the app: whatever the caller sent
            # under the platform's header names is dropped, and the signed-in person's headers are added.
            headers = {k: v for k, v in headers.items() if not k.lower().startswith(PLATFORM_AUTH_HEADERS)}
            headers.update(self.sign_in)
        if path.lower().startswith("/admin/"):
            return self._admin(method, path, body)
        if path in ("", "/"):
            return Reply.json(200, {"status": "running", "functions": [r.function.name for r in self.routes]})
        if self.prefix and not (path.lower() == self.prefix.lower() or path.lower().startswith(self.prefix.lower() + "/")):
            return error(404, "NotFound", f"No function answers {path}")
        rest = path[len(self.prefix):]
        allowed: list[str] = []
        for route in self.routes:
            params = route.template.match(rest)
            if params is None:
                continue
            if method not in route.methods:
                allowed.extend(route.methods)
                continue
            params_query = _query_params(query)
            request = func.HttpRequest(method, url, headers=headers, params=params_query, route_params=params, body=body)
            try:
                return to_reply(route.function.invoke(request, reason=HTTP_REASON), route.function.name)
            except InvocationFailed as failed:
                # The traceback went to the host log; the caller gets only the id to look it up.
                return error(500, "FunctionFailed", f"Function '{route.function.name}' failed",
                             invocationId=failed.invocation_id)
        if allowed:
            methods = ", ".join(dict.fromkeys(allowed))
            return error(405, "MethodNotAllowed", f"{method} is not allowed on {path}", (("Allow", methods),))
        return error(404, "NotFound", f"No function answers {path}")

    def _admin(self, method: str, path: str, body: bytes) -> Reply:
        parts = [p for p in path.split("/") if p]
        if parts[:3] == ["admin", "host", "status"] and len(parts) == 3:
            return Reply.json(200, {"state": "Running"})
        if len(parts) != 3 or parts[1].lower() != "functions":
            return error(404, "NotFound", f"No admin route {path}")
        if method != "POST":
            return error(405, "MethodNotAllowed", "Use POST to run a function", (("Allow", "POST"),))
        try:
            payload = json.loads(body or b"{}")
        except (ValueError, RecursionError):
            return error(400, "BadRequest", 'The body must be JSON like {"input": "..."}')
        if not isinstance(payload, dict) or not isinstance(payload.get("input", ""), str):
            return error(400, "BadRequest", 'The body must be JSON like {"input": "..."} with a string input')
        status, answer = self.admin(parts[2], payload.get("input", ""))
        return Reply.json(status, answer) if answer is not None else Reply(status)


def _query_params(query: str) -> dict[str, str]:
    # ASP.NET joins repeated keys with commas when the host hands the query to the worker.
    params: dict[str, list[str]] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(key, []).append(value)
    return {k: ",".join(v) for k, v in params.items()}


# Like the Functions host (maxRequestBodySize): larger bodies are refused before they are read.
MAX_BODY_BYTES = 100 * 1024 * 1024
MAX_CHUNK_LINE = 1024
REQUEST_TIMEOUT_SECONDS = 60


class BodyTooLarge(Exception):
    """The request declares (or sends) more than MAX_BODY_BYTES."""


def content_length(values: list[str]) -> int:
    """The body's length from its Content-Length header(s): ValueError unless one decimal number,
    so `-1` or `12abc` is a 400, never a read that waits for the client to hang up."""
    distinct = {value.strip() for value in values}
    if not distinct:
        return 0
    if len(distinct) > 1:
        raise ValueError("conflicting Content-Length headers")
    [value] = distinct
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"Content-Length {value[:20]!r} is not a non-negative number")
    length = int(value)
    if length > MAX_BODY_BYTES:
        raise BodyTooLarge
    return length


def _chunk_size(line: bytes) -> int:
    text = line.split(b";")[0].strip()
    if not text or any(c not in b"0123456789abcdefABCDEF" for c in text) or len(text) > 16:
        raise ValueError("bad chunk size")
    return int(text, 16)


class _Server(ThreadingHTTPServer):
    # Non-daemon threads joined on close: stopping the host lets in-flight requests finish.
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128


def _handler(router: Router) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so no idle keep-alive socket delays shutdown.
        protocol_version = "HTTP/1.0"
        server_version = "devhost"

        # A client that stops sending mid-body frees its thread after this many seconds.
        timeout = REQUEST_TIMEOUT_SECONDS

        def _read_body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                chunks, total = [], 0
                while True:
                    size = _chunk_size(self.rfile.readline(MAX_CHUNK_LINE))
                    if size == 0:
                        self.rfile.readline(MAX_CHUNK_LINE)
                        return b"".join(chunks)
                    total += size
                    if total > MAX_BODY_BYTES:
                        raise BodyTooLarge
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline(MAX_CHUNK_LINE)
            length = content_length(self.headers.get_all("Content-Length") or [])
            return self.rfile.read(length) if length else b""

        def _serve(self) -> None:
            try:
                body = self._read_body()
            except BodyTooLarge:
                self._send(error(413, "PayloadTooLarge", f"The body is larger than {MAX_BODY_BYTES} bytes"))
                return
            except ValueError as bad:
                self._send(error(400, "BadRequest", f"Unreadable request body: {bad}"))
                return
            except OSError:  # the client went quiet (timeout) or away: nobody is left to answer
                self.close_connection = True
                return
            parts = urlsplit(self.path)
            headers: dict[str, str] = {}
            for key, value in self.headers.items():
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
            url = f"http://{host}{self.path}"
            try:
                reply = router.handle(self.command, url, parts.path, parts.query, headers, body)
            except Exception:  # a devhost bug: answer like a failed function, details only in the log
                log.exception("devhost failed on %s %s", self.command, parts.path)
                reply = error(500, "HostError", "The local host failed on this request; see its log")
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for key, value in reply.headers:
                if key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if reply.body and self.command != "HEAD":
                self.wfile.write(reply.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            log.debug("http %s - %s", self.address_string(), format % args)

    return Handler


class HttpFront:
    """Serves the router on host:port (0 = a free port) in a background thread."""

    def __init__(self, router: Router, host: str = "127.0.0.1", port: int = 7071) -> None:
        self._server = _Server((host, port), _handler(router))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,), name="devhost-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
