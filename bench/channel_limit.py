"""Figure 9, a broadcast at the channel's real limit on 1, 2 and 4 host processes (target ≥ 0.95 of the limit,
429s ≤ 1% of sends).

The connector stub, in its own process, allows 50 sends per second per tenant over a sliding second and
answers 429 (Retry-After: 1) above it, as Teams does; every recipient is in one tenant. The hosts are dev
host processes on one queue and one Azurite, sharing only the tenant's rate budget row. The rate is the
recipients over the time from the first arrival to the last, at the stub; the baseline is the limit itself.
"""

from __future__ import annotations

import time

from bench.common import Figure, app_settings, storage
from bench.host_process import HostProcess
from bench.stub_process import StubProcess

RECIPIENTS = 2000
LIMIT = 50
HOSTS = (1, 2, 4)
TARGET_RATIO = 0.95
TARGET_THROTTLED = 0.01
TIMEOUT = 240.0


def _seed(settings: dict[str, str], url: str) -> None:
    from shared_code.app.services import Services
    from shared_code.plumbing.settings import load_settings
    from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference

    Services(load_settings(settings)).addresses.save_many([
        ConversationReference("msteams", url, ConversationAccount(f"lim-{i:06d}", tenant_id="tenant-a"),
                              ChannelAccount(f"29:{i}"), ChannelAccount("28:bot"), tenant_id="tenant-a")
        for i in range(RECIPIENTS)], trusted=False)


def _run(connection: str, hosts: int) -> dict:
    from shared_code.app.services import Services
    from shared_code.notifications.audience import fanout
    from shared_code.notifications.jobs import parse_job
    from shared_code.plumbing.settings import load_settings

    with StubProcess(0.02, tenant_limit=LIMIT) as stub:
        settings = app_settings(connection, SendConcurrency="16")
        _seed(settings, stub.url)
        processes = [HostProcess(settings) for _ in range(hosts)]
        try:
            for process in processes:
                process.__enter__()
            fanout.start(parse_job({"v": 1, "id": f"limit-{hosts}", "to": "all", "text": "at the limit"}),
                         Services(load_settings(settings)))
            stub.wait_for(RECIPIENTS, TIMEOUT)
            stats = stub.stats()
        finally:
            for process in processes:
                process.__exit__(None, None, None)
    if stats["delivered"] != RECIPIENTS:
        raise RuntimeError(f"{hosts} hosts delivered {stats['delivered']} of {RECIPIENTS}")
    stats["rate"] = RECIPIENTS / (stats["last"] - stats["first"])
    return stats


def measure() -> Figure:
    runs = {}
    with storage() as connection:
        for hosts in HOSTS:
            runs[hosts] = _run(connection, hosts)
            time.sleep(1)
    ratios = {h: r["rate"] / LIMIT for h, r in runs.items()}
    throttled = {h: r["throttled"] / (r["throttled"] + RECIPIENTS) for h, r in runs.items()}
    ours = "; ".join(f"{h} host{'s' if h > 1 else ''}: {runs[h]['rate']:.1f} msg/s, {throttled[h]:.1%} 429s, "
                     f"most in a second {runs[h]['max_in_any_second']}" for h in HOSTS)
    met = all(r >= TARGET_RATIO for r in ratios.values()) and all(t <= TARGET_THROTTLED for t in throttled.values())
    return Figure(
        f"9. broadcast of {RECIPIENTS:,} at the channel's limit ({LIMIT}/s per tenant, sliding second, 429 above), "
        f"1, 2 and 4 dev host processes on one queue; TenantSendRatePerSecond 48 (default)",
        ours, f"the limit: {LIMIT} msg/s", " / ".join(f"{ratios[h]:.2f}" for h in HOSTS),
        f"≥ {TARGET_RATIO} of the limit, 429s ≤ {TARGET_THROTTLED:.0%}", met)


if __name__ == "__main__":
    print(measure())
