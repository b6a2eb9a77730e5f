"""Telemetry's cost: cold start with telemetry off and on (the OpenTelemetry SDK configured first), against the
same function on CloudAdapter; and this process's CPU per 1,000 messages sent through the queue runner's page
jobs, off and on. Each side in fresh processes (once the API is imported, telemetry is on), runs alternating."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench.cold_start import _activity, _run
from bench.common import ROOT, Figure, app_settings, median, paired_ratio, storage
from bench.stub_process import StubProcess

COLD_RUNS = 7
CPU_PAIRS = 3
RECIPIENTS, PAGE = 2000, 500
LATENCY = 0.005
# name: (child, its extra environment)
COLD = {"off": ("cold_child_ours.py", {}), "on": ("cold_child_ours.py", {"BENCH_TELEMETRY": "on"}),
        "botbuilder": ("cold_child_botbuilder_dialogs.py", {})}


def _cpu(on: bool, connection: str, url: str) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT, **app_settings(connection, SendConcurrency="32", SendRatePerSecond="1000",
                                                          TenantSendRatePerSecond="1000"))
    done = subprocess.run([sys.executable, "-m", "bench.telemetry_child", "on" if on else "off", str(RECIPIENTS),
                           str(PAGE), url], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"telemetry_child failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["otel_imported"] is not on:
        raise RuntimeError(f"telemetry {'on' if on else 'off'} imported the API: {result['otel_imported']}")
    return result


def measure() -> list[Figure]:
    walls: dict[str, list[float]] = {name: [] for name in COLD}
    modules: dict[str, int] = {}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    from stubs.connector import ConnectorStub

    with storage() as connection:
        with ConnectorStub() as connector:
            base_env = dict(os.environ, APP_ROOT=ROOT, PYTHONPATH=ROOT, **app_settings(connection))
            for round_ in range(COLD_RUNS + 1):  # the first round warms the file cache, not counted
                order = list(COLD) if round_ % 2 == 0 else list(reversed(COLD))
                for name in order:
                    script, extra = COLD[name]
                    wall, info = _run(script, dict(base_env, BENCH_ACTIVITY=_activity(connector.url), **extra))
                    if round_:
                        walls[name].append(wall)
                        modules[name] = info["modules"]
        with StubProcess(LATENCY) as stub:
            _cpu(False, connection, stub.url)  # warm Azurite and the file cache
            for pair in range(CPU_PAIRS):
                for on in ((False, True) if pair % 2 == 0 else (True, False)):
                    cpu[on].append(_cpu(on, connection, stub.url)["cpu_per_1000"])
    off_ratio = paired_ratio(walls["off"], walls["botbuilder"])
    on_ratio = paired_ratio(walls["on"], walls["botbuilder"])
    on_vs_off = paired_ratio(walls["on"], walls["off"])
    cpu_ratio = paired_ratio(cpu[True], cpu[False])

    def ms(name: str) -> str:
        return f"{median(walls[name]) * 1000:.0f} ms, {modules[name]} modules"

    return [
        Figure(f"13. cold start, telemetry off (OpenTelemetry never imported), vs the same function on CloudAdapter + "
               f"botbuilder-dialogs (wall, median of {COLD_RUNS}; figure 4's pair)", ms("off"), ms("botbuilder"),
               f"{off_ratio:.2f}", "≤ 0.5 (figure 4), within 5% of it", off_ratio <= 0.5),
        Figure("13. cold start, telemetry on (the OpenTelemetry SDK configured before the function loads, as the "
               "worker does), same baseline", ms("on"), ms("botbuilder"), f"{on_ratio:.2f}", "≤ 0.5", on_ratio <= 0.5),
        Figure("13. extra: cold start on ÷ off (the SDK's import and set-up)", ms("on"), ms("off"), f"{on_vs_off:.2f}",
               "", None),
        Figure(f"13. CPU per 1,000 messages, telemetry on ÷ off: {RECIPIENTS:,} recipients in page jobs of {PAGE} "
               f"through the queue runner (spans, a sampled send span, metrics; batching exporters serializing to "
               f"/dev/null), stub {LATENCY * 1000:.0f} ms in its own process, {CPU_PAIRS} pairs",
               f"on: {median(cpu[True]):.2f} s", f"off: {median(cpu[False]):.2f} s", f"{cpu_ratio:.2f}", "≤ 1.15",
               cpu_ratio <= 1.15),
    ]


if __name__ == "__main__":
    for figure in measure():
        print(figure)
