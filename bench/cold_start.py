"""Cold start: a fresh process importing MessagesFunction and serving its first turn, against the
same function built on botbuilder-python's CloudAdapter. Runs alternate, ratio pair by pair."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

from bench.common import ROOT, Figure, app_settings, median, paired_ratio, storage
from stubs.connector import ConnectorStub

RUNS = 7


def _activity(service_url: str) -> str:
    return json.dumps({
        "type": "message", "id": uuid.uuid4().hex, "channelId": "test", "serviceUrl": service_url,
        "conversation": {"id": f"conv-{uuid.uuid4().hex}"}, "from": {"id": "user-1", "name": "User"},
        "recipient": {"id": "bot-1", "name": "Bot"}, "locale": "en-US", "text": "hi",
    })


def _run(script: str, env: dict[str, str]) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-X", "frozen_modules=on", os.path.join(ROOT, "bench", script)],
                          env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed: {done.stderr[-2000:]}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def measure(runs: int = RUNS) -> list[Figure]:
    with storage() as connection, ConnectorStub() as connector:
        base_env = dict(os.environ, APP_ROOT=ROOT, PYTHONPATH=ROOT, **app_settings(connection))
        ours_wall, base_wall, ours_info, base_info = [], [], [], []
        for _ in range(runs + 1):  # the first pair warms the OS file cache and is not counted
            env = dict(base_env, BENCH_ACTIVITY=_activity(connector.url))
            wall_a, info_a = _run("cold_child_ours.py", env)
            env = dict(base_env, BENCH_ACTIVITY=_activity(connector.url))
            wall_b, info_b = _run("cold_child_botbuilder.py", env)
            ours_wall.append(wall_a), base_wall.append(wall_b), ours_info.append(info_a), base_info.append(info_b)
        ours_wall, base_wall, ours_info, base_info = ours_wall[1:], base_wall[1:], ours_info[1:], base_info[1:]
        expected_replies = 2 * (runs + 1)
        if connector.total_delivered() != expected_replies:
            raise RuntimeError(f"expected {expected_replies} replies at the stub, saw {connector.total_delivered()}")
    ratio = paired_ratio(ours_wall, base_wall)
    import_ratio = paired_ratio([i["import_s"] for i in ours_info], [i["import_s"] for i in base_info])
    return [
        Figure(f"4. cold start: process start to first turn served (wall, median of {runs})",
               f"{median(ours_wall) * 1000:.0f} ms", f"{median(base_wall) * 1000:.0f} ms",
               f"{ratio:.2f}", "≤ 0.5", ratio <= 0.5),
        Figure("4. cold start: imports only",
               f"{median([i['import_s'] for i in ours_info]) * 1000:.0f} ms, {ours_info[0]['modules']} modules",
               f"{median([i['import_s'] for i in base_info]) * 1000:.0f} ms, {base_info[0]['modules']} modules",
               f"{import_ratio:.2f}", "", None),
    ]


if __name__ == "__main__":
    for figure in measure():
        print(figure)
