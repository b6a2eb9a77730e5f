"""Fan-out benchmark: page sender vs a sequential send loop, and peak memory by broadcast size.

    python -m bench.fanout            # starts its own Azurite unless AzureWebJobsStorage is set

The connector stub runs in its own process (with the app in the same process, the two
would share one GIL and the stub would be measured as much as the sender).
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import time
import uuid
from typing import Any

LATENCY = 0.020
CONCURRENCY = 32
RATE = 1000.0
RECIPIENTS = 2000
SEQUENTIAL_SAMPLE = 300  # a sequential loop over all 2000 would take ~45 s to say the same thing


def _serve_stub(latency: float, conn: Any) -> None:
    from stubs.connector import ConnectorStub

    with ConnectorStub(latency=latency) as stub:
        conn.send(stub.url)
        conn.recv()  # until told to stop
        conn.send(stub.total_delivered())


class StubProcess:
    def __init__(self, latency: float) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve_stub, args=(latency, child), daemon=True)

    def __enter__(self) -> StubProcess:
        self._process.start()
        self.url = self._conn.recv()
        return self

    def delivered_and_stop(self) -> int:
        self._conn.send("stop")
        count = self._conn.recv()
        self._process.join(5)
        return count

    def __exit__(self, *exc: object) -> None:
        if self._process.is_alive():
            self._process.kill()


def _env(storage: str, **extra: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    env = {"AzureWebJobsStorage": storage, "MicrosoftAppId": "", "AddressesTableName": f"benchaddr{suffix}",
           "DeliveriesTableName": f"benchdeliv{suffix}", "NotificationsTableName": f"benchnotif{suffix}",
           "JobsQueueName": f"bench-{suffix}", "SendConcurrency": str(CONCURRENCY),
           "SendRatePerSecond": str(RATE), "BroadcastPageSize": "100"}
    env.update(extra)
    return env


def _references(url: str, count: int, prefix: str) -> list[Any]:
    from shared_code.activity import ChannelAccount, ConversationAccount, ConversationReference

    return [ConversationReference("bench", url, ConversationAccount(f"{prefix}-{i:06d}"),
                                  ChannelAccount(f"u-{i}"), ChannelAccount("bot")) for i in range(count)]


def throughput(storage: str) -> dict[str, float]:
    from shared_code.activity import message_to
    from shared_code.connector import ConnectorClient, NoCredentials, new_session
    from shared_code.rate_limit import TokenBucket
    from shared_code.sender import send_all

    results: dict[str, float] = {}
    with StubProcess(LATENCY) as stub:
        refs = _references(stub.url, RECIPIENTS, "tp")
        # The official samples' way: one POST after another.
        client = ConnectorClient(NoCredentials(), new_session(1))
        started = time.perf_counter()
        for ref in refs[:SEQUENTIAL_SAMPLE]:
            client.send_to_conversation(ref, message_to(ref, "hi"), trusted=False)
        results["sequential_per_s"] = SEQUENTIAL_SAMPLE / (time.perf_counter() - started)

        # Our page sender: thread pool over one session, process-wide token bucket.
        client = ConnectorClient(NoCredentials(), new_session(CONCURRENCY))

        def send(ref: Any, take_token: Any) -> str:
            take_token()
            return client.send_to_conversation(ref, message_to(ref, "hi"), trusted=False)

        started = time.perf_counter()
        send_all(refs, send, concurrency=CONCURRENCY, limiter=TokenBucket(RATE))
        results["sender_per_s"] = RECIPIENTS / (time.perf_counter() - started)

        # The whole page pipeline: address lookup, ledger claim and mark on Azurite, send.
        results["pipeline_per_s"] = _pipeline(storage, stub.url)
    return results


def _pipeline(storage: str, url: str) -> float:
    os.environ.update(_env(storage))
    from shared_code import services
    from shared_code.delivery import run_page
    from shared_code.fanout import PageJob
    from shared_code.jobs import parse_job
    from shared_code.ledger import RecipientKey

    services.reset()
    app = services.get()
    refs = _references(url, RECIPIENTS, "pl")
    app.addresses.save_many(refs, trusted=False)
    app.notifications.create(parse_job({"v": 1, "id": "bench", "to": "all", "text": "hi"}))
    app.ledger.ensure_table()
    keys = [RecipientKey(r.channel_id, r.conversation.id) for r in refs]
    started = time.perf_counter()
    for page in range(0, RECIPIENTS, 100):
        run_page(PageJob("bench", f"{page // 100:06d}", tuple(keys[page:page + 100])), app)
    return RECIPIENTS / (time.perf_counter() - started)


def memory_child(count: int) -> None:
    """Seed `count` addresses, run the whole broadcast (scan and page jobs off the queue), print peak RSS."""
    from shared_code import fanout, job_runner, services
    from shared_code.jobs import parse_job

    url = os.environ["BENCH_STUB_URL"]
    app = services.get()
    app.addresses.save_many(_references(url, count, "m"), trusted=False)
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    fanout.start(parse_job({"v": 1, "id": "mem", "to": "all", "text": "hi"}), app)
    queue = app.queue()
    while True:
        messages = list(queue.receive_messages(max_messages=16, visibility_timeout=120))
        if not messages:
            status = app.notifications.status("mem")
            if status is not None and status.to_json()["state"] == "done":
                break
            time.sleep(0.2)
            continue
        for message in messages:
            job_runner.handle_queue_message(base64.b64decode(message.content), app, message_id=message.id)
            queue.delete_message(message)
    final = app.notifications.status("mem").to_json()
    print(json.dumps({"count": count, "sent": final["sent"], "seconds": time.perf_counter() - started,
                      "seeded_maxrss_kb": baseline_kb,
                      "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def memory(storage: str, sizes: tuple[int, ...] = (1000, 20000)) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    with StubProcess(0.0) as stub:
        for count in sizes:
            env = dict(os.environ, **_env(storage), BENCH_STUB_URL=stub.url)
            done = subprocess.run([sys.executable, "-m", "bench.fanout", "--memory-child", str(count)],
                                  env=env, capture_output=True, text=True, check=True)
            out[count] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def report(storage: str, *, with_memory: bool = True) -> str:
    tp = throughput(storage)
    bound = min(CONCURRENCY / LATENCY, RATE)
    lines = [
        f"stub latency {LATENCY * 1000:.0f} ms (separate process), concurrency {CONCURRENCY}, rate limit {RATE:.0f}/s, "
        f"{RECIPIENTS} recipients, {os.cpu_count()} CPUs",
        f"sequential loop ({SEQUENTIAL_SAMPLE} sends): {tp['sequential_per_s']:.0f} msg/s",
        f"page sender (send_all + connector): {tp['sender_per_s']:.0f} msg/s = "
        f"{tp['sender_per_s'] / tp['sequential_per_s']:.1f}x sequential (target >= 15x), "
        f"{tp['sender_per_s'] / bound:.0%} of min(concurrency/latency, rate) = {bound:.0f}/s (target >= 80%)",
        f"full page pipeline (address read + ledger claim/mark on Azurite + send): {tp['pipeline_per_s']:.0f} msg/s = "
        f"{tp['pipeline_per_s'] / tp['sequential_per_s']:.1f}x sequential",
    ]
    if not with_memory:
        return "\n".join(lines)
    mem = memory(storage)
    small, large = mem[1000], mem[20000]
    delta_mb = (large["maxrss_kb"] - small["maxrss_kb"]) / 1024
    lines += [
        f"peak RSS, whole broadcast in one process: 1,000 -> {small['maxrss_kb'] / 1024:.1f} MB "
        f"({small['seconds']:.1f} s), 20,000 -> {large['maxrss_kb'] / 1024:.1f} MB ({large['seconds']:.1f} s); "
        f"difference {delta_mb:.1f} MB (target <= 30 MB); sent {small['sent']} and {large['sent']}",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--memory-child", type=int)
    parser.add_argument("--skip-memory", action="store_true", help="throughput only (the memory runs take minutes)")
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return 0
    storage = os.environ.get("AzureWebJobsStorage", "")
    if storage and storage != "UseDevelopmentStorage=true":
        print(report(storage, with_memory=not args.skip_memory))
        return 0
    from devhost import azurite

    emulator = azurite.start(blob=False)
    try:
        print(report(emulator.connection_string, with_memory=not args.skip_memory))
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
