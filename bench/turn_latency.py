"""Figure 5, turn latency: POST /api/messages through the dev host (a subprocess) with Azurite and the
connector stub at 0 ms, so what is left is ours: auth check, address save, dialog state, the reply.

Side by side, each turn is paired with a POST of the same body to a route the host does not
have (its own 404 JSON): the host's floor (HTTP parsing, routing, loopback) on the same
machine at the same moment. Turns are sequential, as one user typing.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid

import requests

from bench.common import Figure, app_settings, paired_ratio, storage
from bench.host_process import HostProcess
from bench.stub_process import StubProcess

WARMUP = 20
TURNS = 300
CONVERSATIONS = 50  # turns cycle over them: some first turns, mostly returning users, as in real traffic


def _activity(service_url: str, i: int) -> bytes:
    return json.dumps({"type": "message", "id": uuid.uuid4().hex, "channelId": "test", "serviceUrl": service_url,
                       "conversation": {"id": f"turn-conv-{i % CONVERSATIONS}"}, "from": {"id": f"u-{i % CONVERSATIONS}"},
                       "recipient": {"id": "bot"}, "locale": "en-US", "text": "hi"}).encode()


def _timed_post(session: requests.Session, url: str, body: bytes, expect: int) -> float:
    started = time.perf_counter()
    response = session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=30)
    elapsed = time.perf_counter() - started
    if response.status_code != expect:
        raise RuntimeError(f"{url} answered {response.status_code}, expected {expect}: {response.text[:300]}")
    return elapsed


def _percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def measure() -> Figure:
    with storage() as connection, StubProcess(0.0) as stub, HostProcess(app_settings(connection)) as host:
        turn_url, floor_url = f"{host.url}/api/messages", f"{host.url}/api/no-such-route"
        session = requests.Session()
        ours, floor = [], []
        for i in range(WARMUP + TURNS):
            body = _activity(stub.url, i)
            # Alternate which goes first, so neither always follows the other's leftovers.
            first, second = ((turn_url, 200), (floor_url, 404)) if i % 2 == 0 else ((floor_url, 404), (turn_url, 200))
            a = _timed_post(session, first[0], body, first[1])
            b = _timed_post(session, second[0], body, second[1])
            if i >= WARMUP:
                ours.append(a if first[0] == turn_url else b)
                floor.append(b if first[0] == turn_url else a)
        replies = stub.delivered()
    if replies < WARMUP + TURNS:
        raise RuntimeError(f"{WARMUP + TURNS} turns but only {replies} replies at the stub")
    p50, p99 = _percentile(ours, 50) * 1000, _percentile(ours, 99) * 1000
    f50, f99 = _percentile(floor, 50) * 1000, _percentile(floor, 99) * 1000
    return Figure(
        f"5. turn latency, POST /api/messages through the dev host (subprocess) + Azurite, stub 0 ms, local mode, "
        f"{TURNS} sequential turns after {WARMUP} warm-up; baseline: the host's own 404 for the same POST, "
        f"interleaved; ratio: median of per-pair ratios",
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms", f"p50 {f50:.1f} ms, p99 {f99:.1f} ms",
        f"{paired_ratio(ours, floor):.1f}×", "", None)


if __name__ == "__main__":
    print(measure())
