"""One cold start of this app: a fresh process imports MessagesFunction and serves its first turn.

BENCH_TELEMETRY=on configures the OpenTelemetry SDK first, as the Python worker configures its distro
before it loads a function (bench figure 13)."""

from __future__ import annotations

import json
import os
import sys
import time

start = time.perf_counter()
sys.path.insert(0, os.environ["APP_ROOT"])
if os.environ.get("BENCH_TELEMETRY") == "on":
    from bench.telemetry_sdk import configure

    configure()

import azure.functions as func  # noqa: E402

import MessagesFunction  # noqa: E402

imported = time.perf_counter()
body = os.environ["BENCH_ACTIVITY"].encode()
request = func.HttpRequest("POST", "http://localhost/api/messages", headers={"Content-Type": "application/json"},
                           body=body)
response = MessagesFunction.main(request)
done = time.perf_counter()
if response.status_code != 200:
    sys.exit(f"unexpected status {response.status_code}: {response.get_body()!r}")
print(json.dumps({"import_s": imported - start, "first_turn_s": done - start, "modules": len(sys.modules)}))
