"""A test-side stand-in for the Functions host's queue trigger: receive, base64-decode, call main().

It plays the host's semantics (DESIGN.md, Queue semantics): a message is invisible while
it runs (`visibility` seconds); main() returning deletes it; main() raising leaves it to
reappear after the visibility timeout, until `max_dequeue` deliveries, then it moves to
`<queue>-poison` as it was. Delayed messages are honoured by the queue itself.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import azure.functions.queue as func_queue
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient

log = logging.getLogger(__name__)

Main = Callable[[func_queue.QueueMessage], None]


class QueueDriver:
    def __init__(self, connection: str, queue_name: str, main: Main | None = None, *,
                 visibility: int = 5, max_dequeue: int = 5, batch: int = 16) -> None:
        if main is None:
            import NotifyQueueFunction

            main = NotifyQueueFunction.main
        self.queue = QueueClient.from_connection_string(connection, queue_name)
        self.poison = QueueClient.from_connection_string(connection, f"{queue_name}-poison")
        self.main = main
        self.visibility, self.max_dequeue, self.batch = visibility, max_dequeue, batch
        self.processed = 0
        self.failures: list[BaseException] = []
        for queue in (self.queue, self.poison):
            try:
                queue.create_queue()
            except ResourceExistsError:
                pass

    def step(self) -> int:
        """Run every message visible now; returns how many were received."""
        try:
            received = list(self.queue.receive_messages(max_messages=self.batch, visibility_timeout=self.visibility))
        except ResourceNotFoundError:
            return 0
        for message in received:
            self._run(message)
        return len(received)

    def run_until(self, done: Callable[[], bool], *, timeout: float = 60.0, idle_sleep: float = 0.1) -> None:
        """Drain until `done()` is true; AssertionError (with what went wrong) after `timeout`."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"queue not drained in {timeout}s; function errors: {self.failures[-3:]!r}")
            if self.step() == 0:
                time.sleep(idle_sleep)

    def run_in_thread(self, done: Callable[[], bool], *, timeout: float = 60.0) -> threading.Thread:
        """Another "host" on the same queue; errors end up in `self.failures`."""
        def loop() -> None:
            try:
                self.run_until(done, timeout=timeout)
            except BaseException as exc:  # reported by the test through `failures`
                self.failures.append(exc)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def poisoned(self) -> list[str]:
        """The poison queue's messages, base64-decoded (peeked: left in place)."""
        try:
            return [base64.b64decode(m.content).decode("utf-8", "replace")
                    for m in self.poison.peek_messages(max_messages=32)]
        except ResourceNotFoundError:
            return []

    def _run(self, message: Any) -> None:
        try:
            body = base64.b64decode(message.content, validate=True)
        except (binascii.Error, ValueError):
            # The host cannot decode it either: it ends in poison as it came.
            self._to_poison(message)
            return
        trigger = func_queue.QueueMessage(id=message.id, body=body, dequeue_count=message.dequeue_count,
                                          pop_receipt=message.pop_receipt, insertion_time=message.inserted_on)
        try:
            self.main(trigger)
        except BaseException as exc:  # noqa: B036 - a "host" survives whatever its function raises
            self.failures.append(exc)
            log.info("function raised on message %s (delivery %s): %r", message.id, message.dequeue_count, exc)
            if message.dequeue_count >= self.max_dequeue:
                self._to_poison(message)
            return
        self.processed += 1
        self._delete(message)

    def _to_poison(self, message: Any) -> None:
        self.poison.send_message(message.content)
        self._delete(message)

    def _delete(self, message: Any) -> None:
        try:
            self.queue.delete_message(message.id, message.pop_receipt)
        except (ResourceNotFoundError, HttpResponseError):
            pass  # its visibility ran out and another host holds it now: that host finishes it
