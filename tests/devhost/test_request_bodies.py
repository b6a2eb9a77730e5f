"""devhost reading request bodies: a bad Content-Length or chunk size is answered at once, never waited on."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devhost.host import Host
from devhost.http_trigger import MAX_BODY_BYTES
from tests.support.function_apps import ECHO, http_bindings, write_function

# Only a guard against hanging the suite: a host that waits for the body never answers at all.
HANG_GUARD_SECONDS = 30


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Host]:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    write_function(tmp_path, "HttpEchoFn", http_bindings("items/{id?}", ["get", "post"]), ECHO)
    with Host(tmp_path, port=0) as running:
        yield running


def raw_exchange(host: Host, head: str, body: bytes = b"") -> tuple[int, dict]:
    """Send a request without closing our side (a client waiting for its answer); the status and JSON body."""
    port = int(host.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD_SECONDS) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head_part, _, payload = received.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1])
    return status, json.loads(payload) if payload else {}


@pytest.mark.parametrize("declared", ["-1", "abc", "1e3", "+5", "0x10", "\u00b2"])
def test_a_content_length_that_is_not_a_decimal_number_is_a_400(host: Host, declared: str) -> None:
    status, body = raw_exchange(host, f"POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}")

    assert status == 400
    assert body["error"]["code"] == "BadRequest"
    assert "Content-Length" in body["error"]["message"]


def test_conflicting_content_lengths_are_a_400(host: Host) -> None:
    status, body = raw_exchange(host, "POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3",
                                b"{}")

    assert status == 400
    assert "conflicting" in body["error"]["message"]


def test_a_declared_body_over_the_limit_is_a_413_without_reading_it(host: Host) -> None:
    status, body = raw_exchange(host, f"POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY_BYTES + 1}")

    assert status == 413
    assert body["error"]["code"] == "PayloadTooLarge"


@pytest.mark.parametrize("size_line", ["-1", "zz", ""])
def test_a_bad_chunk_size_is_a_400(host: Host, size_line: str) -> None:
    status, body = raw_exchange(host, "POST /api/items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked",
                                size_line.encode() + b"\r\n")

    assert status == 400
    assert body["error"]["code"] == "BadRequest"


def test_a_good_chunked_body_still_reaches_the_function(host: Host) -> None:
    status, body = raw_exchange(host, "POST /api/items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked",
                                b"4\r\n{\"a\"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n")

    assert status == 201
    assert body["body"] == '{"a": 1}'


def test_the_host_still_serves_after_a_bad_content_length(host: Host) -> None:
    raw_exchange(host, "POST /api/items HTTP/1.1\r\nHost: x\r\nContent-Length: -1")

    response = requests.post(f"{host.url}/api/items/7", data=b'{"x": 1}', timeout=HANG_GUARD_SECONDS)

    assert response.status_code == 201
    assert response.json()["body"] == '{"x": 1}'


def test_admin_input_nested_ten_thousand_deep_is_a_400(host: Host) -> None:
    deep = b"[" * 10_000 + b"]" * 10_000

    response = requests.post(f"{host.url}/admin/functions/HttpEchoFn", data=deep, timeout=HANG_GUARD_SECONDS)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
