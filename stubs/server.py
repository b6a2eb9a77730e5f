"""A small threaded HTTP server on a free loopback port, for the stubs."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


@dataclass
class StubRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class StubResponse:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes/str -> as is
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[StubRequest], StubResponse]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True


def _handler_class(handle: Handler) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real services
        # Headers and body go out in two writes: with Nagle on, the body waits for the client's
        # delayed ACK (~40 ms per request), which would swamp any latency a test or bench sets.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = StubRequest(self.command, parts.path, parts.query, dict(self.headers.items()), body)
            try:
                response = handle(request)
            except Exception as exc:  # a stub bug must show, not hang the client
                response = StubResponse(500, {"error": {"code": "StubError", "message": repr(exc)}})
            payload = response.body
            if isinstance(payload, (dict, list)):
                data = json.dumps(payload).encode()
                content_type = "application/json; charset=utf-8"
            elif isinstance(payload, str):
                data, content_type = payload.encode(), "text/plain; charset=utf-8"
            elif payload is None:
                data, content_type = b"", ""
            else:
                data, content_type = payload, "application/octet-stream"
            self.send_response(response.status)
            headers = dict(response.headers)
            if content_type and not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = content_type
            headers["Content-Length"] = str(len(data))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if data and self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass

    return _Handler


class StubServer:
    """Serves `handle` on http://127.0.0.1:<free port> in a background thread."""

    def __init__(self, handle: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), _handler_class(handle))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="stub-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
