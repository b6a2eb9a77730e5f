"""Figure 7, peak memory of a notification's CSV report by its size: 1,000 vs 20,000 recipients (target ≤ 20 MB apart).

The parent seeds, for each size, the notification, one address and one ledger row ("sent") per recipient and
one acknowledgement in ten, written straight to the tables in batches (running a 20,000 broadcast first would
measure the broadcast). A fresh child process then builds the report as GET /api/notify/{id}/report does, so its
peak (VmHWM, see memory.py) is the report's: a page of ledger rows and the CSV text, never every entity.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime

from bench.common import ROOT, Figure, app_settings, storage

SIZES = (1000, 20000)
TARGET_MB = 20.0
CHILD_TIMEOUT = 600.0
NOTIFICATION = "bench-report"
LEDGER_PAGE = 100  # recipients per ledger partition, as the fan-out's pages


def _peak_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def _child() -> None:
    from shared_code.app import services
    from shared_code.notifications.after_send import reports

    app = services.get()
    _ = app.notifications, app.addresses, app.acknowledgements, app.table_service  # clients before "ready"
    ready_kb = _peak_kb()
    started = time.monotonic()
    body = reports.notification_report(NOTIFICATION, app)
    print(json.dumps({"rows": body.count(b"\r\n") - 1, "bytes": len(body), "seconds": time.monotonic() - started,
                      "ready_kb": ready_kb, "peak_kb": _peak_kb()}))


def _seed(settings: dict[str, str], count: int) -> None:
    from shared_code.app.services import Services
    from shared_code.notifications.jobs import parse_job
    from shared_code.notifications.records.acknowledgements import Acknowledgement, How
    from shared_code.notifications.records.ledger import RecipientKey
    from shared_code.plumbing.settings import load_settings
    from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference
    from shared_code.storage.keys import encode_key
    from shared_code.storage.tables import ensure_table

    app = Services(load_settings(settings))
    app.notifications.create(parse_job({"v": 1, "id": NOTIFICATION, "to": "all", "text": "hi", "ack": {}}))
    keys = [RecipientKey("bench", f"rep-{i:06d}") for i in range(count)]
    app.addresses.save_many([ConversationReference("bench", "http://127.0.0.1:9", ConversationAccount(k.conversation_id),
                                                   ChannelAccount(f"u-{i}", f"User {i}"), ChannelAccount("bot"),
                                                   locale="en-US") for i, k in enumerate(keys)], trusted=False)
    ledger = app.table_service.get_table_client(app.settings.deliveries_table)
    ensure_table(ledger)
    now = datetime.now(UTC)
    for start in range(0, count, LEDGER_PAGE):
        partition = f"{encode_key(NOTIFICATION)}.{start // LEDGER_PAGE:06d}"
        ledger.submit_transaction([("upsert", {
            "PartitionKey": partition, "RowKey": k.row_key, "ChannelId": k.channel_id, "ConversationId": k.conversation_id,
            "State": "sent", "Attempts": 1, "ClaimedAt": now.timestamp(), "Code": "", "Detail": "", "UpdatedAt": now,
        }) for k in keys[start:start + LEDGER_PAGE]])
    for i, key in enumerate(keys[::10]):
        app.acknowledgements.add(Acknowledgement(NOTIFICATION, key, f"u-{i * 10}", "", How.INVOKE, now))


def measure() -> Figure:
    peaks: dict[int, dict] = {}
    with storage() as connection:
        for count in SIZES:
            settings = app_settings(connection)
            _seed(settings, count)
            done = subprocess.run([sys.executable, "-m", "bench.report_memory", "--child"], cwd=ROOT,
                                  env=dict(os.environ, **settings), capture_output=True, text=True,
                                  timeout=CHILD_TIMEOUT)
            if done.returncode != 0:
                raise RuntimeError(f"report child for {count} failed: {done.stderr[-2000:]}")
            peaks[count] = json.loads(done.stdout.strip().splitlines()[-1])
            if peaks[count]["rows"] != count:
                raise RuntimeError(f"report child for {count} wrote {peaks[count]['rows']} rows")
    small, large = (peaks[n] for n in SIZES)
    apart = (large["peak_kb"] - small["peak_kb"]) / 1024
    return Figure(
        f"10. peak RSS of one process building a notification's CSV report, {SIZES[0]:,} vs {SIZES[1]:,} recipients "
        f"({large['bytes'] / 2**20:.1f} MB of CSV in {large['seconds']:.0f} s; after imports and clients: "
        f"{small['ready_kb'] / 1024:.0f} MB)",
        f"{SIZES[1]:,}: {large['peak_kb'] / 1024:.1f} MB", f"{SIZES[0]:,}: {small['peak_kb'] / 1024:.1f} MB",
        f"{apart:+.1f} MB apart", f"≤ {TARGET_MB:.0f} MB apart", apart <= TARGET_MB)


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        _child()
    else:
        print(measure())
