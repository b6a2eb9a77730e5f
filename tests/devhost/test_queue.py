"""devhost queue triggers against a real Azurite: decoding, dequeue count, retries, poison queue, shutdown."""

from __future__ import annotations

import base64
import json
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import requests
from azure.storage.queue import QueueClient

from devhost.host import Host

HOST_JSON = {
    "version": "2.0",
    "extensions": {"queues": {"batchSize": 4, "newBatchThreshold": 2, "maxPollingInterval": "00:00:00.200",
                              "visibilityTimeout": "00:00:01", "maxDequeueCount": 3, "messageEncoding": "base64"}},
}

# Each try appends one JSON line to a file next to the function, then does what the body says.
RECORDER = """
    import json
    import pathlib
    import time

    def main(msg, context):
        body = msg.get_body().decode()
        line = {"body": body, "dequeue_count": msg.dequeue_count, "id": msg.id, "function": context.function_name}
        if body.startswith("slow"):
            time.sleep(1.0)
        with open(pathlib.Path(__file__).parent / "tries.jsonl", "a") as out:
            out.write(json.dumps(line) + "\\n")
        if body.startswith("fail"):
            raise ValueError("cannot handle " + body)
"""


def make_app(root: Path, name: str) -> Path:
    (root / "host.json").write_text(json.dumps(HOST_JSON))
    folder = root / name
    folder.mkdir()
    binding = {"type": "queueTrigger", "direction": "in", "name": "msg", "queueName": "%DevhostTestQueue%",
               "connection": "AzureWebJobsStorage"}
    (folder / "function.json").write_text(json.dumps({"scriptFile": "__init__.py", "bindings": [binding]}))
    (folder / "__init__.py").write_text(textwrap.dedent(RECORDER))
    return folder / "tries.jsonl"


def tries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_until(check, timeout: float = 15.0):  # noqa: ANN001, ANN201 - tiny test helper
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    return check()


@pytest.fixture
def queue_name(storage_connection: str, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"devhost-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("AzureWebJobsStorage", storage_connection)
    monkeypatch.setenv("DevhostTestQueue", name)
    return name


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_queue_message_runs_function_with_decoded_body_and_dequeue_count_one(
        tmp_path: Path, storage_connection: str, queue_name: str) -> None:
    log = make_app(tmp_path, "QueueOkFn")
    queue = QueueClient.from_connection_string(storage_connection, queue_name)
    with Host(tmp_path, port=0):
        queue.send_message(b64('{"hello": "wörld"}'))
        got = wait_until(lambda: tries(log))
        deleted = wait_until(lambda: queue.get_queue_properties().approximate_message_count == 0, timeout=5)

    assert [(t["body"], t["dequeue_count"], t["function"]) for t in got] == [('{"hello": "wörld"}', 1, "QueueOkFn")]
    assert deleted  # the count includes invisible messages: zero means deleted, not leased


def test_queue_failing_message_goes_to_poison_after_max_dequeue_count_with_body_intact(
        tmp_path: Path, storage_connection: str, queue_name: str) -> None:
    log = make_app(tmp_path, "QueuePoisonFn")
    queue = QueueClient.from_connection_string(storage_connection, queue_name)
    poison = QueueClient.from_connection_string(storage_connection, f"{queue_name}-poison")
    original = b64("fail: always")
    with Host(tmp_path, port=0):
        queue.send_message(original)
        poisoned = wait_until(lambda: list(poison.peek_messages(max_messages=5)) if _exists(poison) else [])
        time.sleep(0.3)  # a fourth try would show up here

    assert [t["dequeue_count"] for t in tries(log)] == [1, 2, 3]
    assert [m.content for m in poisoned] == [original]
    assert list(queue.peek_messages()) == []


def test_queue_message_that_is_not_base64_goes_to_poison_without_running(
        tmp_path: Path, storage_connection: str, queue_name: str) -> None:
    log = make_app(tmp_path, "QueueBadBase64Fn")
    queue = QueueClient.from_connection_string(storage_connection, queue_name)
    poison = QueueClient.from_connection_string(storage_connection, f"{queue_name}-poison")
    with Host(tmp_path, port=0):
        queue.send_message("{not base64}")
        poisoned = wait_until(lambda: list(poison.peek_messages()) if _exists(poison) else [])

    assert [m.content for m in poisoned] == ["{not base64}"]
    assert tries(log) == []


def test_queue_stop_lets_a_running_message_finish_and_deletes_it(
        tmp_path: Path, storage_connection: str, queue_name: str) -> None:
    log = make_app(tmp_path, "QueueSlowFn")
    queue = QueueClient.from_connection_string(storage_connection, queue_name)
    host = Host(tmp_path, port=0).start()
    queue.send_message(b64("slow one"))
    wait_until(lambda: not list(queue.peek_messages()), timeout=5)  # fetched, invisible while it runs
    time.sleep(0.3)  # running now (the function sleeps a second)
    host.stop()

    assert [t["body"] for t in tries(log)] == ["slow one"]
    assert list(queue.peek_messages()) == []
    assert queue.get_queue_properties().approximate_message_count == 0


def test_queue_admin_endpoint_runs_function_with_input_as_body(tmp_path: Path, queue_name: str) -> None:
    log = make_app(tmp_path, "QueueAdminFn")
    with Host(tmp_path, port=0) as host:
        response = requests.post(f"{host.url}/admin/functions/QueueAdminFn", json={"input": "from admin"}, timeout=5)
        got = wait_until(lambda: tries(log), timeout=5)

    assert response.status_code == 202
    assert [t["body"] for t in got] == ["from admin"]


def _exists(client: QueueClient) -> bool:
    try:
        client.get_queue_properties()
        return True
    except Exception:
        return False


def test_queue_messages_of_a_batch_run_concurrently(
        tmp_path: Path, storage_connection: str, queue_name: str) -> None:
    log = make_app(tmp_path, "QueueBatchFn")
    queue = QueueClient.from_connection_string(storage_connection, queue_name)
    queue.create_queue()
    for index in range(4):
        queue.send_message(b64(f"slow {index}"))
    started = time.monotonic()
    with Host(tmp_path, port=0):
        got = wait_until(lambda: len(tries(log)) == 4 or None, timeout=10)
        elapsed = time.monotonic() - started

    assert got
    assert elapsed < 3.0  # four one-second messages, one batch of four: well under four seconds
