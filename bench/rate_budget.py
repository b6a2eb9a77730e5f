"""Figure 7, the shared rate budget: 1, 2 and 4 sender processes against a channel that allows 50/s per tenant.

Each process sends its share of the messages to one tenant on 16 threads, each send through the rate
budget (one Azurite table shared by the processes, TenantSendRatePerSecond 48); a 429 is reported to
the budget and the message sent again. Baseline: what each instance did before, its own token bucket
at SendRatePerSecond 50, paused by a 429's Retry-After. No ledger, no queue: the budget alone (the
full pipeline is measured with the delivery that uses it). The stub (own process, 20 ms) enforces
50 per sliding second per tenant and counts what it accepted and refused.

Delivered rate: messages ÷ (last accepted − first attempt), over all processes; ratio to the limit (50).
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
import uuid
from typing import Any

from bench.common import Figure, storage

CHANNEL_LIMIT = 50
BUDGET_RATE = 48.0
LATENCY = 0.020
MESSAGES = 1000
THREADS = 16
TENANT = "bench-tenant"


def _serve(conn: Any) -> None:
    from stubs.connector import ConnectorStub

    with ConnectorStub(latency=LATENCY, tenant_limit=CHANNEL_LIMIT) as stub:
        conn.send(stub.url)
        while True:
            command = conn.recv()
            limits = stub.limits
            conn.send((limits.sent(TENANT), limits.throttled(TENANT), limits.max_in_any_second(TENANT)))
            if command == "stop":
                return


def _sender(url: str, connection: str, table: str, shared: bool, count: int, ready: Any, go: Any, results: Any) -> None:
    """One app instance sending `count` messages to one tenant; puts (first attempt, last accepted, 429s)."""
    import requests
    from azure.data.tables import TableClient

    from shared_code.notifications.sending.rate_budget import RateBudget
    from shared_code.notifications.sending.rate_limit import TokenBucket

    if shared:
        budget = RateBudget(TableClient.from_connection_string(connection, table), limit=BUDGET_RATE)
        acquire, throttled = (lambda: budget.acquire(TENANT)), (lambda after: budget.throttled(TENANT, after))
    else:
        bucket = TokenBucket(CHANNEL_LIMIT)
        acquire, throttled = bucket.acquire, (lambda after: bucket.hold(after or 1.0))
    lock = threading.Lock()
    left = [count]
    times: list[float] = []
    refused = [0]

    def work() -> None:
        session = requests.Session()
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
                number = left[0]
            conversation = f"c-{uuid.uuid4().hex[:6]}-{number}"
            body = {"type": "message", "text": "hi", "conversation": {"id": conversation, "tenantId": TENANT}}
            while True:  # a throttled message is sent again: throttling is never a recipient's failure
                acquire()
                answer = session.post(f"{url}/v3/conversations/{conversation}/activities", json=body, timeout=30)
                if answer.status_code != 429:
                    break
                with lock:
                    refused[0] += 1
                throttled(float(answer.headers.get("Retry-After", "1")))
            with lock:
                times.append(time.time())

    ready.put(1)
    go.wait(60)
    started = time.time()
    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put((started, max(times), refused[0]))


def _run(url: str, connection: str, processes: int, shared: bool) -> tuple[float, int]:
    """Delivered rate (msg/s) and 429s for `processes` senders sharing MESSAGES."""
    ctx = mp.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    table = f"bench{uuid.uuid4().hex[:10]}"
    shares = [MESSAGES // processes + (1 if i < MESSAGES % processes else 0) for i in range(processes)]
    children = [ctx.Process(target=_sender, args=(url, connection, table, shared, share, ready, go, results), daemon=True)
                for share in shares]
    for child in children:
        child.start()
    for _ in children:
        ready.get(timeout=120)
    go.set()
    outcomes = [results.get(timeout=600) for _ in children]
    for child in children:
        child.join(10)
    first = min(o[0] for o in outcomes)
    last = max(o[1] for o in outcomes)
    return MESSAGES / (last - first), sum(o[2] for o in outcomes)


def measure() -> list[Figure]:
    figures = []
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    stub = ctx.Process(target=_serve, args=(child,), daemon=True)
    stub.start()
    url = parent.recv()
    try:
        with storage() as connection:
            for processes in (1, 2, 4):
                before = _stats(parent)
                ours, ours_refused = _run(url, connection, processes, shared=True)
                middle = _stats(parent)
                baseline, baseline_refused = _run(url, connection, processes, shared=False)
                after = _stats(parent)
                if middle[0] - before[0] != MESSAGES or after[0] - middle[0] != MESSAGES:
                    raise RuntimeError(f"stub accepted {middle[0] - before[0]} and {after[0] - middle[0]}, expected {MESSAGES}")
                ours_share = ours_refused / (MESSAGES + ours_refused)
                baseline_share = baseline_refused / (MESSAGES + baseline_refused)
                ratio = ours / CHANNEL_LIMIT
                figures.append(Figure(
                    f"7. shared rate budget, {processes} process{'es' if processes > 1 else ''} × {THREADS} threads, "
                    f"{MESSAGES:,} messages to one tenant, stub allows {CHANNEL_LIMIT}/s (sliding second, 429 above), "
                    f"20 ms; ours: TenantSendRatePerSecond {BUDGET_RATE:.0f} on one Azurite table; baseline: a token "
                    f"bucket of {CHANNEL_LIMIT}/s per process; ratio: ours ÷ the limit",
                    f"{ours:.1f} msg/s, 429s {ours_share:.1%}", f"{baseline:.1f} msg/s, 429s {baseline_share:.1%}",
                    f"{ratio:.2f}", "≥ 0.9 and 429s ≤ 1%", ratio >= 0.9 and ours_share <= 0.01))
            parent.send("stop")
            parent.recv()
    finally:
        stub.join(5)
        if stub.is_alive():
            stub.kill()
    return figures


def _stats(conn: Any) -> tuple[int, int, int]:
    conn.send("stats")
    return conn.recv()


if __name__ == "__main__":
    for figure in measure():
        print(figure)
