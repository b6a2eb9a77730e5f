"""Figure 1, broadcast throughput: our page sender vs botbuilder-python's proactive sample.

Baseline: what the official proactive-messages sample does, `CloudAdapter.continue_conversation`
for each saved ConversationReference, one after another, the callback sending one text.
Ours: our `ConnectorClient` on the process's send threads (`sender.send_pool`), 32 at a time, under the
process token bucket: the sender alone (the claim window's sends, without the ledger).
Both against the same ConnectorStub (own process, 20 ms latency).

Both sides run in local mode (no MicrosoftAppId): botbuilder gets its tokens through MSAL,
which accepts only an https authority and first asks login.microsoftonline.com for instance
discovery, so it cannot be pointed at the local http TokenStub without the network. Token
fetches are one per process on both sides anyway (figure 3 counts ours).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from bench.common import Figure, app_settings, median, paired_ratio, storage
from bench.stub_process import StubProcess

LATENCY = 0.020
CONCURRENCY = 32
RATE = 1000.0
RECIPIENTS = 2000
# One at a time at ~20+ ms a send, the whole 2,000 would take a minute per run to tell the same
# rate: the sequential sides send a sample of the same references.
SEQUENTIAL_SAMPLE = 150
PAIRS = 3


class _Config:  # the sample's config.py, local mode
    APP_ID = ""
    APP_PASSWORD = ""
    APP_TYPE = "MultiTenant"
    APP_TENANTID = ""


def _our_references(url: str, count: int, prefix: str) -> list[Any]:
    from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference

    return [ConversationReference("bench", url, ConversationAccount(f"{prefix}-{i:06d}"),
                                  ChannelAccount(f"u-{i}"), ChannelAccount("bot")) for i in range(count)]


def _botbuilder_rate(url: str, count: int, run: int) -> float:
    from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication
    from botbuilder.schema import ChannelAccount, ConversationAccount, ConversationReference

    references = [ConversationReference(channel_id="bench", service_url=url,
                                        conversation=ConversationAccount(id=f"bb{run}-{i:06d}"),
                                        user=ChannelAccount(id=f"u-{i}"), bot=ChannelAccount(id="bot"))
                  for i in range(count)]

    async def broadcast() -> float:
        adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(_Config()))
        started = time.perf_counter()
        for reference in references:  # the sample's loop over its saved references
            await adapter.continue_conversation(reference, lambda turn: turn.send_activity("hi"), _Config.APP_ID)
        return count / (time.perf_counter() - started)

    return asyncio.run(broadcast())


def _plain_loop_rate(url: str, count: int, run: int) -> float:
    """Our connector client, one POST after another: what the SDK costs over a plain loop."""
    from shared_code.plumbing.http_session import pooled_session
    from shared_code.protocol.activity import message_to
    from shared_code.protocol.connector import ConnectorClient, NoCredentials

    client = ConnectorClient(NoCredentials(), pooled_session(4))
    references = _our_references(url, count, f"loop{run}")
    started = time.perf_counter()
    for reference in references:
        client.send_to_conversation(reference, message_to(reference, "hi"), trusted=False)
    return count / (time.perf_counter() - started)


def _sender_rate(url: str, count: int, run: int) -> tuple[float, float]:
    """Messages per second, and this process's CPU seconds per 1,000 messages (the stub is another process)."""
    from shared_code.notifications.sending.rate_limit import TokenBucket
    from shared_code.plumbing.http_session import pooled_session
    from shared_code.protocol.activity import message_to
    from shared_code.protocol.connector import ConnectorClient, NoCredentials

    client = ConnectorClient(NoCredentials(), pooled_session(max(CONCURRENCY, 4)))
    references = _our_references(url, count, f"ours{run}")

    bucket = TokenBucket(RATE)

    def send(reference: Any) -> str:
        bucket.acquire()
        return client.send_to_conversation(reference, message_to(reference, "hi"), trusted=False)

    started, cpu = time.perf_counter(), time.process_time()
    results = _at_most(CONCURRENCY, send, references)
    rate = count / (time.perf_counter() - started)
    cpu = time.process_time() - cpu  # every thread of this process: the sender alone
    if len(results) != count:
        raise RuntimeError(f"page sender returned {len(results)} of {count} results")
    return rate, cpu / count * 1000


def _at_most(concurrency: int, send: Any, items: list[Any]) -> list[Any]:
    """`send(item)` for every item on the process's send threads, never more than `concurrency` at once
    (as a claim window keeps its sends in flight); the results."""
    from concurrent.futures import FIRST_COMPLETED, wait

    from shared_code.notifications.sending.sender import send_pool

    pool, pending, results = send_pool(), set(), []
    for item in items:
        if len(pending) >= concurrency:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            results.extend(future.result() for future in done)
        pending.add(pool.submit(send, item))
    results.extend(future.result() for future in wait(pending).done)
    return results


def _pipeline_rate(connection: str, url: str, count: int) -> tuple[float, float]:
    """The whole page path per recipient: address read, ledger claim and finish on Azurite, send;
    messages per second and this process's CPU seconds per 1,000 messages (Azurite's not included)."""
    os.environ.update(app_settings(connection, SendConcurrency=str(CONCURRENCY), SendRatePerSecond=str(RATE),
                                   TenantSendRatePerSecond=str(RATE)))
    from shared_code.app import services
    from shared_code.notifications.audience.fanout import PageJob
    from shared_code.notifications.jobs import parse_job
    from shared_code.notifications.records.ledger import RecipientKey
    from shared_code.notifications.sending.delivery import run_page

    services.reset()
    app = services.get()
    references = _our_references(url, count, "pipe")
    app.addresses.save_many(references, trusted=False)
    app.notifications.create(parse_job({"v": 1, "id": "bench", "to": "all", "text": "hi"}))
    keys = [RecipientKey(r.channel_id, r.conversation.id) for r in references]
    pages = range(0, count, 100)
    for page in pages:  # frozen as a scan would: a page job sends only to its frozen page
        app.notifications.claim_page("bench", f"{page // 100:06d}", keys[page:page + 100], None)
    started, cpu = time.perf_counter(), time.process_time()
    for page in pages:
        run_page(PageJob("bench", f"{page // 100:06d}", tuple(keys[page:page + 100])), app)
    rate = count / (time.perf_counter() - started)
    cpu = time.process_time() - cpu
    services.reset()
    return rate, cpu / count * 1000


def measure() -> list[Figure]:
    ours, baseline, loop, cpu = [], [], [], []
    with storage() as connection, StubProcess(LATENCY) as stub:
        _sender_rate(stub.url, 200, -1), _botbuilder_rate(stub.url, 10, -1)  # warm imports and pools
        for run in range(PAIRS):  # A B C, then C B A: drift within a pair cancels both ways
            order = [_sender_rate, _botbuilder_rate, _plain_loop_rate]
            for measure_one in order if run % 2 == 0 else reversed(order):
                count = RECIPIENTS if measure_one is _sender_rate else SEQUENTIAL_SAMPLE
                rate = measure_one(stub.url, count, run)
                if measure_one is _sender_rate:
                    rate, cpu_per_1000 = rate
                    cpu.append(cpu_per_1000)
                {_sender_rate: ours, _botbuilder_rate: baseline, _plain_loop_rate: loop}[measure_one].append(rate)
        pipeline, pipeline_cpu = _pipeline_rate(connection, stub.url, RECIPIENTS)
        expected = 200 + 10 + PAIRS * (RECIPIENTS + 2 * SEQUENTIAL_SAMPLE) + RECIPIENTS
        delivered = stub.delivered()
    if delivered != expected:
        raise RuntimeError(f"stub saw {delivered} deliveries, expected {expected}")
    bound = min(CONCURRENCY / LATENCY, RATE)
    vs_baseline = paired_ratio(ours, baseline)
    vs_bound = median(ours) / bound
    setup = f"{RECIPIENTS:,} recipients, stub {LATENCY * 1000:.0f} ms in its own process, local mode"
    return [
        Figure(f"1. broadcast throughput, {setup}; ours: page sender, concurrency {CONCURRENCY}, "
               f"rate limit {RATE:.0f}/s; baseline: botbuilder CloudAdapter.continue_conversation "
               f"one after another ({SEQUENTIAL_SAMPLE} of the same references per run), {PAIRS} pairs",
               f"{median(ours):.0f} msg/s; sender alone: CPU {median(cpu):.2f} s per 1,000 messages",
               f"{median(baseline):.1f} msg/s", f"{vs_baseline:.1f}×", "≥ 15×", vs_baseline >= 15),
        Figure(f"1. ours ÷ min(concurrency ÷ latency, rate limit) = ours ÷ {bound:.0f}/s",
               f"{median(ours):.0f} msg/s", f"{bound:.0f} msg/s", f"{vs_bound:.2f}", "≥ 0.8", vs_bound >= 0.8),
        Figure("1. extra: ours ÷ a plain sequential loop of our own connector client",
               f"{median(ours):.0f} msg/s", f"{median(loop):.1f} msg/s", f"{paired_ratio(ours, loop):.1f}×", "", None),
        Figure("1. extra: the full page pipeline (address read + ledger claim/finish on Azurite + send), "
               "run_page over 20 pages, ÷ botbuilder",
               f"{pipeline:.0f} msg/s; CPU {pipeline_cpu:.2f} s per 1,000 messages (this process; Azurite's apart)",
               f"{median(baseline):.1f} msg/s",
               f"{pipeline / median(baseline):.1f}×", "", None),
    ]


if __name__ == "__main__":
    for figure in measure():
        print(figure)
