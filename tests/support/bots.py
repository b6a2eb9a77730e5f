"""A bot over local HTTP for the local chat's tests: keeps every activity (and its headers) it is sent."""

from __future__ import annotations

import threading
from collections.abc import Callable

from stubs.server import StubRequest, StubResponse, StubServer


class RecordingBot:
    """Keeps what it gets in `received` and `headers`; `answer(activity)` says what to answer (default 200)."""

    def __init__(self, answer: Callable[[dict], StubResponse] | None = None) -> None:
        self.received: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self._answer = answer or (lambda activity: StubResponse(200))
        self._lock = threading.Lock()
        self.server = StubServer(self._handle)

    def _handle(self, request: StubRequest) -> StubResponse:
        activity = request.json()
        with self._lock:
            self.received.append(activity)
            self.headers.append(request.headers)
        return self._answer(activity)
