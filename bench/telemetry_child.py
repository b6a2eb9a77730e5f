"""One broadcast's page jobs through the queue runner in a fresh process, telemetry on or off (argv[1]);
prints this process's CPU seconds per 1,000 messages (the connector stub and Azurite are other processes)."""

from __future__ import annotations

import json
import sys
import time

ON = sys.argv[1] == "on"
COUNT, PAGE = int(sys.argv[2]), int(sys.argv[3])
URL = sys.argv[4]

if ON:
    from bench.telemetry_sdk import configure, flush

    configure()

from shared_code.app import services  # noqa: E402
from shared_code.notifications import queue_runner  # noqa: E402
from shared_code.notifications.audience.fanout import PageJob  # noqa: E402
from shared_code.notifications.jobs import parse_job  # noqa: E402
from shared_code.notifications.records.ledger import RecipientKey  # noqa: E402
from shared_code.plumbing import tracing  # noqa: E402
from tests.support.builders import reference  # noqa: E402

app = services.get()
references = [reference(URL, f"tel-{i:05d}", channel_id="test") for i in range(COUNT)]
app.addresses.save_many(references, trusted=False)
with tracing.span(tracing.NOTIFY, {}):
    app.notifications.create(parse_job({"v": 1, "id": "bench", "to": "all", "text": "hi"}),
                             trace_parent=tracing.current_traceparent() or "")
keys = [RecipientKey(r.channel_id, r.conversation.id) for r in references]
bodies = []
for index, first in enumerate(range(0, COUNT, PAGE)):
    page = f"{index:06d}"
    app.notifications.claim_page("bench", page, keys[first:first + PAGE], None)
    bodies.append(json.dumps(tracing.with_traceparent(PageJob("bench", page, tuple(keys[first:first + PAGE])).to_json())))
started, cpu = time.perf_counter(), time.process_time()
for body in bodies:
    queue_runner.handle_queue_message(body.encode(), app, message_id=f"m-{body[:8]}")
if ON:
    flush()  # the exporters' work is part of the cost
cpu = time.process_time() - cpu
print(json.dumps({"cpu_per_1000": cpu / COUNT * 1000, "rate": COUNT / (time.perf_counter() - started),
                  "otel_imported": "opentelemetry.trace" in sys.modules}))
