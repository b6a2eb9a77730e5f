"""Figure 2, end-to-end broadcast: POST /api/notify to the dev host (a subprocess), the scan and page
jobs through the Azurite queue, the ledger in Azurite tables, sends to the connector stub (own process).

The clock starts before the POST and stops when the stub has stored the last message; the
status endpoint's counts must then agree with what the stub received.
"""

from __future__ import annotations

import time
import uuid

import requests

from bench.common import Figure, app_settings, storage
from bench.host_process import HostProcess
from bench.stub_process import StubProcess

RECIPIENTS = 5000
LATENCY = 0.020
CONCURRENCY = 32
RATE = 1000.0
PAGE_SIZE = 500
TARGET_RATIO = 0.5  # of min(concurrency ÷ latency, rate limit)
DELIVERY_TIMEOUT = 300.0  # bounded: a stuck broadcast is a failed figure, not a hung `make bench`


def _seed(settings: dict[str, str], url: str, count: int) -> None:
    from shared_code.app.services import Services
    from shared_code.plumbing.settings import load_settings
    from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference

    references = [ConversationReference("bench", url, ConversationAccount(f"e2e-{i:06d}"),
                                        ChannelAccount(f"u-{i}"), ChannelAccount("bot")) for i in range(count)]
    Services(load_settings(settings)).addresses.save_many(references, trusted=False)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc; Linux)."""
    import os

    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _final_status(status_url: str, expected: int, timeout: float = 30.0) -> dict:
    """The status once every page summary is written (the last sends finish before their page's counts)."""
    deadline = time.monotonic() + timeout
    while True:
        body = requests.get(status_url, timeout=10).json()
        if body.get("state") == "done" or body.get("sent", 0) >= expected or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def measure() -> Figure:
    with storage() as connection, StubProcess(LATENCY) as stub:
        # No channel limit: the tenant's budget is set as high as the instance's ceiling.
        settings = app_settings(connection, SendConcurrency=str(CONCURRENCY), SendRatePerSecond=str(RATE),
                                TenantSendRatePerSecond=str(RATE), BroadcastPageSize=str(PAGE_SIZE))
        seeding = time.monotonic()
        _seed(settings, stub.url, RECIPIENTS)
        seeding = time.monotonic() - seeding
        with HostProcess(settings) as host:
            cpu_before = _cpu_seconds(host.pid)
            started = time.monotonic()
            answer = requests.post(f"{host.url}/api/notify", timeout=30,
                                   json={"id": f"bench-{uuid.uuid4().hex[:8]}", "to": "all", "text": "hi"})
            if answer.status_code != 202:
                raise RuntimeError(f"POST /api/notify answered {answer.status_code}: {answer.text[:500]}")
            delivered, last = stub.wait_for(RECIPIENTS, DELIVERY_TIMEOUT)
            elapsed = last - started
            cpu = _cpu_seconds(host.pid) - cpu_before
            status = _final_status(answer.json()["status"], RECIPIENTS)
            if delivered < RECIPIENTS:
                raise RuntimeError(f"only {delivered} of {RECIPIENTS} delivered in {DELIVERY_TIMEOUT:.0f} s; "
                                   f"status {status}\n{host.log_tail()}")
        delivered = stub.delivered()
    agree = status.get("sent") == delivered == RECIPIENTS and status.get("state") == "done"
    bound = min(CONCURRENCY / LATENCY, RATE)
    return Figure(
        f"2. end-to-end broadcast, {RECIPIENTS:,} recipients: POST /api/notify to the dev host (subprocess), "
        f"queue and tables on Azurite, stub {LATENCY * 1000:.0f} ms; SendConcurrency {CONCURRENCY}, "
        f"SendRatePerSecond {RATE:.0f}, BroadcastPageSize {PAGE_SIZE} (seeding took {seeding:.0f} s, not counted); "
        f"ratio: ÷ min(concurrency ÷ latency, rate limit)",
        f"{RECIPIENTS / elapsed:.0f} msg/s, last delivery at {elapsed:.1f} s; full pipeline: dev host CPU "
        f"{cpu / RECIPIENTS * 1000:.2f} s per 1,000 messages (Azurite's and the stub's apart; "
        f"the sender alone: figure 1)",
        f"status: {status.get('state')}, sent {status.get('sent')}; stub: {delivered}",
        f"{RECIPIENTS / elapsed / bound:.2f}", f"≥ {TARGET_RATIO} and status counts = stub's",
        agree and RECIPIENTS / elapsed / bound >= TARGET_RATIO)


if __name__ == "__main__":
    print(measure())
