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


CHILDREN = {
    "ours": "cold_child_ours.py",
    # The equivalent function: what MessagesFunction does (address, dialog stack in Table Storage,
    # reply) built the SDK's way, on CloudAdapter and botbuilder-dialogs.
    "botbuilder": "cold_child_botbuilder_dialogs.py",
    # A lighter function than ours (no dialogs: address and reply only), shown for reference.
    "botbuilder_no_dialogs": "cold_child_botbuilder.py",
}


def measure(runs: int = RUNS) -> list[Figure]:
    walls: dict[str, list[float]] = {name: [] for name in CHILDREN}
    infos: dict[str, list[dict]] = {name: [] for name in CHILDREN}
    with storage() as connection, ConnectorStub() as connector:
        base_env = dict(os.environ, APP_ROOT=ROOT, PYTHONPATH=ROOT, **app_settings(connection))
        for round_ in range(runs + 1):  # the first round warms the OS file cache and is not counted
            order = list(CHILDREN) if round_ % 2 == 0 else list(reversed(CHILDREN))
            for name in order:
                wall, info = _run(CHILDREN[name], dict(base_env, BENCH_ACTIVITY=_activity(connector.url)))
                if round_:
                    walls[name].append(wall)
                    infos[name].append(info)
        expected_replies = len(CHILDREN) * (runs + 1)
        if connector.total_delivered() != expected_replies:
            raise RuntimeError(f"expected {expected_replies} replies at the stub, saw {connector.total_delivered()}")

    def imports(name: str) -> list[float]:
        return [i["import_s"] for i in infos[name]]

    def row(name: str) -> str:
        return f"{median(walls[name]) * 1000:.0f} ms"

    ratio = paired_ratio(walls["ours"], walls["botbuilder"])
    lighter = paired_ratio(walls["ours"], walls["botbuilder_no_dialogs"])
    return [
        Figure(f"4. cold start: process start to first turn served, vs the same function on CloudAdapter + "
               f"botbuilder-dialogs (wall, median of {runs})", row("ours"), row("botbuilder"),
               f"{ratio:.2f}", "≤ 0.5", ratio <= 0.5),
        Figure("4. cold start: imports only, same pair",
               f"{median(imports('ours')) * 1000:.0f} ms, {infos['ours'][0]['modules']} modules",
               f"{median(imports('botbuilder')) * 1000:.0f} ms, {infos['botbuilder'][0]['modules']} modules",
               f"{paired_ratio(imports('ours'), imports('botbuilder')):.2f}", "", None),
        Figure("4. extra: vs a lighter CloudAdapter function without dialogs (address and reply only)",
               row("ours"), row("botbuilder_no_dialogs"), f"{lighter:.2f}", "", None),
    ]


if __name__ == "__main__":
    for figure in measure():
        print(figure)
