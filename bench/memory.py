"""Figure 6, peak memory of a broadcast by its size: 1,000 vs 20,000 recipients (target ≤ 30 MB apart).

Each broadcast runs in a fresh child process, which runs the scan and page jobs off the queue as one host instance would. The addresses
are seeded by the parent, so the child's peak is the broadcast's, not the seeding's.
Memory, not time: no pairing needed, and the stub runs at 0 ms.

The peak is VmHWM from /proc/self/status, not ru_maxrss: Linux carries ru_maxrss over from the
parent across fork and exec, so a child of a big `python -m bench` reported the parent's size.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench.common import ROOT, Figure, app_settings, run_broadcast, storage
from bench.stub_process import StubProcess

SIZES = (1000, 20000)
TARGET_MB = 30.0
CHILD_TIMEOUT = 420.0


def _peak_kb() -> int:
    """This process's own resident-set high-water mark, in KiB (fresh at exec, unlike ru_maxrss)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def _child() -> None:
    from shared_code.app import services

    app = services.get()
    _ = app.connector, app.notifications, app.ledger, app.addresses  # clients built before the "ready" mark
    ready_kb = _peak_kb()
    status = run_broadcast(app, timeout=CHILD_TIMEOUT - 20)
    print(json.dumps({"sent": status["sent"], "ready_kb": ready_kb,
                      "peak_kb": _peak_kb()}))


def _seed(settings: dict[str, str], url: str, count: int) -> None:
    from shared_code.app.services import Services
    from shared_code.plumbing.settings import load_settings
    from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference

    Services(load_settings(settings)).addresses.save_many(
        [ConversationReference("bench", url, ConversationAccount(f"mem-{i:06d}"), ChannelAccount(f"u-{i}"),
                               ChannelAccount("bot")) for i in range(count)], trusted=False)


def measure() -> Figure:
    peaks: dict[int, dict] = {}
    with storage() as connection, StubProcess(0.0) as stub:
        for count in SIZES:
            settings = app_settings(connection, SendConcurrency="32", SendRatePerSecond="1000", TenantSendRatePerSecond="1000")
            _seed(settings, stub.url, count)
            done = subprocess.run([sys.executable, "-m", "bench.memory", "--child"], cwd=ROOT,
                                  env=dict(os.environ, **settings), capture_output=True, text=True,
                                  timeout=CHILD_TIMEOUT)
            if done.returncode != 0:
                raise RuntimeError(f"memory child for {count} failed: {done.stderr[-2000:]}")
            peaks[count] = json.loads(done.stdout.strip().splitlines()[-1])
            if peaks[count]["sent"] != count:
                raise RuntimeError(f"memory child for {count} sent {peaks[count]['sent']}")
    small, large = (peaks[n] for n in SIZES)
    apart = (large["peak_kb"] - small["peak_kb"]) / 1024
    return Figure(
        f"6. peak RSS of one process running a whole broadcast off the queue, {SIZES[0]:,} vs {SIZES[1]:,} "
        f"recipients (after imports and clients: {small['ready_kb'] / 1024:.0f} MB)",
        f"{SIZES[1]:,}: {large['peak_kb'] / 1024:.1f} MB", f"{SIZES[0]:,}: {small['peak_kb'] / 1024:.1f} MB",
        f"{apart:+.1f} MB apart", f"≤ {TARGET_MB:.0f} MB apart", apart <= TARGET_MB)


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        _child()
    else:
        print(measure())
