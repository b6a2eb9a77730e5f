"""Queue triggers: poll a Storage queue (Azurite) and run the function per message, with the host's retry/poison rules."""

from __future__ import annotations

import base64
import binascii
import logging
import math
import os
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import azure.functions.queue as func_queue
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueMessage

from devhost.app import AppError, QueueOptions
from devhost.invocation import Function, InvocationFailed

log = logging.getLogger("devhost")

# The host leases a fetched message for 10 minutes while the function runs (functionTimeout is
# at most that on the Consumption plan); a crash lets it reappear after the lease.
LEASE_SECONDS = 600
MIN_POLL_SECONDS = 0.1
MAX_MESSAGES_PER_GET = 32  # the Storage service's limit


def connection_string(function: Function, environ: Mapping[str, str] = os.environ) -> str:
    """The connection named by the binding's `connection` (default AzureWebJobsStorage), as the host finds it."""
    name = str(function.spec.trigger.get("connection") or "AzureWebJobsStorage")
    for candidate in (name, f"AzureWebJobs{name}"):
        if environ.get(candidate):
            return environ[candidate]
    raise AppError(f"Function '{function.name}': storage connection setting '{name}' is not set")


def decode_body(content: str, encoding: str) -> bytes:
    """The function's view of a message: base64 text decoded, as messageEncoding says."""
    if encoding == "none":
        return content.encode("utf-8")
    return base64.b64decode(content, validate=True)


def to_function_message(message: QueueMessage, body: bytes) -> func_queue.QueueMessage:
    return func_queue.QueueMessage(
        id=message.id, body=body, dequeue_count=message.dequeue_count, insertion_time=message.inserted_on,
        expiration_time=message.expires_on, time_next_visible=message.next_visible_on, pop_receipt=message.pop_receipt)


def admin_message(text: str) -> func_queue.QueueMessage:
    """What the admin endpoint hands a queue function: the input as the body, no queue behind it."""
    now = datetime.now(UTC)
    return func_queue.QueueMessage(id=str(uuid.uuid4()), body=text.encode("utf-8"), dequeue_count=0,
                                   insertion_time=now, expiration_time=None, time_next_visible=now, pop_receipt=None)


class QueueListener:
    """Polls one queue for one function. `stop()` lets in-flight messages finish (deleted or released)."""

    def __init__(self, function: Function, options: QueueOptions, connection: str) -> None:
        self.function = function
        self.options = options
        self.queue_name = str(function.spec.trigger["queueName"]).lower()
        self.client = QueueClient.from_connection_string(connection, self.queue_name)
        self.poison = QueueClient.from_connection_string(connection, f"{self.queue_name}-poison")
        self.batch_size = max(1, min(options.batch_size, MAX_MESSAGES_PER_GET))
        # The host runs at most batchSize + newBatchThreshold messages of a function at once.
        self._executor = ThreadPoolExecutor(max_workers=self.batch_size + max(0, options.new_batch_threshold),
                                            thread_name_prefix=f"queue-{function.name}")
        self._stopping = threading.Event()
        self._in_flight = 0
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._poll, name=f"poll-{function.name}", daemon=True)

    def start(self) -> None:
        _create_queue(self.client)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.join()
        self._executor.shutdown(wait=True)

    # --- polling -----------------------------------------------------------------
    def _poll(self) -> None:
        delay = MIN_POLL_SECONDS
        reason = f"New queue message detected on '{self.queue_name}'."
        while not self._stopping.is_set():
            with self._changed:
                # Fetch the next batch only once the running ones drop to newBatchThreshold.
                self._changed.wait_for(lambda: self._stopping.is_set()
                                       or self._in_flight <= self.options.new_batch_threshold)
            if self._stopping.is_set():
                return
            try:
                messages = list(self.client.receive_messages(messages_per_page=self.batch_size,
                                                             max_messages=self.batch_size,
                                                             visibility_timeout=LEASE_SECONDS))
            except ResourceNotFoundError:
                _create_queue(self.client)  # deleted under us (tests do it); the host recreates it too
                messages = []
            except Exception:
                log.exception("Polling queue '%s' for function '%s' failed", self.queue_name, self.function.name)
                messages = []
            if messages:
                delay = MIN_POLL_SECONDS
                for message in messages:
                    with self._changed:
                        self._in_flight += 1
                    self._executor.submit(self._process, message, reason)
                continue
            self._stopping.wait(delay)
            delay = min(delay * 2, max(MIN_POLL_SECONDS, self.options.max_polling_interval))

    def _process(self, message: QueueMessage, reason: str) -> None:
        try:
            self._handle(message, reason)
        except Exception:
            log.exception("Handling message %s of queue '%s' failed; it reappears after its lease",
                          message.id, self.queue_name)
        finally:
            with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()

    def _handle(self, message: QueueMessage, reason: str) -> None:
        if self._stopping.is_set():
            # Fetched but not started when the host stopped: hand it back at once.
            self.client.update_message(message, visibility_timeout=0)
            return
        if message.dequeue_count > self.options.max_dequeue_count:
            # Taken more often than allowed (a host crashed mid-run): poison without running again.
            self._to_poison(message, f"dequeued {message.dequeue_count} times")
            return
        try:
            body = decode_body(str(message.content), self.options.message_encoding)
        except (binascii.Error, ValueError):
            self._to_poison(message, "its body is not valid base64 (host.json messageEncoding is base64)")
            return
        try:
            self.function.invoke(to_function_message(message, body), reason=reason)
        except InvocationFailed:
            if message.dequeue_count >= self.options.max_dequeue_count:
                self._to_poison(message, f"the function failed {message.dequeue_count} times")
            else:
                self.client.update_message(message, visibility_timeout=math.ceil(self.options.visibility_timeout))
            return
        _delete(self.client, message)

    def _to_poison(self, message: QueueMessage, why: str) -> None:
        _create_queue(self.poison)
        # The original text as received (base64 stays base64), as the host copies it.
        self.poison.send_message(message.content)
        _delete(self.client, message)
        log.warning("Message %s of queue '%s' moved to '%s': %s", message.id, self.queue_name,
                    self.poison.queue_name, why)


def _create_queue(client: QueueClient) -> None:
    try:
        client.create_queue()
    except ResourceExistsError:
        pass


def _delete(client: QueueClient, message: QueueMessage) -> None:
    try:
        client.delete_message(message)
    except (ResourceNotFoundError, HttpResponseError) as exc:
        # The lease ran out and someone else took the message: theirs to finish now.
        log.warning("Could not delete message %s of queue '%s': %s", message.id, client.queue_name, exc.reason)
