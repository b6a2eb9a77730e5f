"""Clocks for tests that would otherwise wait in real time."""

from __future__ import annotations

import threading


class FakeClock:
    """Time that moves only when someone sleeps."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds
