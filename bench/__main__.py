"""`python -m bench` (`make bench`): every figure, side by side, printed and written to bench/RESULTS.md."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench import (
    auth_fetches,
    broadcast,
    channel_limit,
    cold_start,
    end_to_end,
    graph_reach,
    host_killed,
    memory,
    portal,
    rate_budget,
    readme,
    report_memory,
    table_ops,
    telemetry,
    turn_latency,
)
from bench.common import ROOT, Figure

# In the order. Each measure starts what it needs (stubs, dev host) and stops it.
FIGURES = {
    "broadcast": broadcast.measure,
    "end_to_end": end_to_end.measure,
    "auth_fetches": auth_fetches.measure,
    "cold_start": cold_start.measure,
    "turn_latency": turn_latency.measure,
    "memory": memory.measure,
    "rate_budget": rate_budget.measure,
    "table_ops": table_ops.measure,
    "channel_limit": channel_limit.measure,
    "report_memory": report_memory.measure,
    "graph_reach": graph_reach.measure,
    "host_killed": host_killed.measure,
    "telemetry": telemetry.measure,
    "portal": portal.measure,
}


NOTES = """
Notes:
- Figure 1 runs both sides in local mode (no MicrosoftAppId, no token on the wire). botbuilder-python gets
  its token through MSAL, which accepts only an https authority and first asks login.microsoftonline.com
  for instance discovery, so it cannot be pointed at the local http TokenStub without the network. Both
  sides fetch one token per process when an app id is set (figure 3 counts ours), so it would not move
  a 2,000-message rate.
- Figure 1's sequential sides (botbuilder, plain loop) send a sample of the same references per run: one
  at a time, the rate is the same over 150 as over 2,000, and 2,000 would take about a minute per run.
- Figure 2 runs the dev host, Azurite, the stub and the bench on 2 shared cores: the host's CPU per message
  (its row) and Azurite's share the machine, so it is CPU-bound well before the stub's bound; the ledger
  costs about 0.09 table operations per message (figure 8), the address reads one range query per page.
- Figure 11 broadcasts to 2,000 people, not the issue's 10,000: at Graph's limits a new person costs one
  POST and two GETs of installedApps (30/s each per tenant), so about 14.5 people a second and 11.5 minutes a
  run for 10,000. The rate (people a second, first message to last) is what is measured, not the total time;
  `python -m bench.graph_reach --people 10000 --hosts 1` runs the full size by hand.
- Figure 12 kills the host about 2 s after the first delivery, while it runs all four pages: the next delivery
  waits for a page's watchdog, at most PageWatchSeconds + three heartbeats (20 + 15 s) after the kill plus the
  queue's polling; where in its 20 s cycle the kill falls moves it (README, "A host that dies mid-page").
- Figure 13's "on" configures the OpenTelemetry SDK (batching exporters to /dev/null) before the function loads,
  as the Python worker configures its distro; the app's own part of that is nil on the turn path (its tracer and
  instruments are made at the first notification call). The Azure Monitor distro itself imports and sets up in
  about 1.4 s more, which is why it is not deployed yet (README, "Telemetry").
- Absolute times move with the machine's load (it is shared); ratios are measured side by side.
"""


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python {platform.python_version()}"


def table(figures: list[Figure]) -> str:
    lines = ["| figure | ours | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    for f in figures:
        met = "" if f.met is None else ("yes" if f.met else "**no**")
        lines.append(f"| {f.name} | {f.ours} | {f.baseline} | {f.ratio} | {f.target} | {met} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", choices=sorted(FIGURES), help="run only these figures")
    parser.add_argument("--no-write", action="store_true", help="print, but do not rewrite bench/RESULTS.md or the README's table")
    args = parser.parse_args(argv)
    started = time.monotonic()
    figures: list[Figure] = []
    for name, measure in FIGURES.items():
        if args.only and name not in args.only:
            continue
        print(f"measuring {name} ...", flush=True)
        saved = dict(os.environ)
        try:
            result = measure()
        finally:  # in-process figures set app settings; the next figure starts from a clean environment
            os.environ.clear()
            os.environ.update(saved)
        figures.extend(result if isinstance(result, list) else [result])
    elapsed = time.monotonic() - started
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    report = (
        "# Benchmark results\n\n"
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{commit or 'unknown'}` on {machine()}, "
        f"in {elapsed:.0f} s with `make bench`. Ratios are ours ÷ baseline, measured side by side in the same run "
        "(runs alternate, median of the per-pair ratios). Shared, noisy machines: read the ratios, not the absolute times.\n\n"
        + table(figures) + "\n" + NOTES
    )
    print()
    print(table(figures))
    if not args.no_write and not args.only:
        with open(os.path.join(ROOT, "bench", "RESULTS.md"), "w") as out:
            out.write(report)
        readme.main()
        print("\nwritten to bench/RESULTS.md and the README's table")
    return 0  # a missed target is a finding to read in the table, not a crash


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
