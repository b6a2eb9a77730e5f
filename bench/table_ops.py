"""Figure 8, Table Storage operations per delivered message for a whole broadcast (target ≤ 0.1).

The rate budget's row (a few operations per second per tenant, not per message) is reported apart.

Counted at the HTTP layer: every request the app's TableServiceClient sends goes through an
azure-core hook (`raw_request_hook`) that counts it by table, so an entity-group transaction is
one operation, as Table Storage bills it. The one-time address scan (one query per scanned page,
as `pages` in the status says) is left out, as the target says; the page jobs' own reads of
their addresses are counted. The broadcast runs off the queue in this process, as one host
instance runs it (run_broadcast), against a stub at 0 ms in its own process.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from urllib.parse import urlparse

from bench.common import Figure, app_settings, run_broadcast, storage
from bench.stub_process import StubProcess

RECIPIENTS = 2000
TARGET = 0.1


def measure() -> Figure:
    from azure.data.tables import TableServiceClient

    from shared_code.app.services import Services
    from shared_code.plumbing.settings import load_settings
    from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference

    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def count(request: object) -> None:
        path = urlparse(request.http_request.url).path  # type: ignore[attr-defined]
        table = path.strip("/").split("/")[-1].split("(")[0] or "?"
        with lock:
            counts[table] += 1

    with storage() as connection, StubProcess(0.0) as stub:
        settings = app_settings(connection, SendConcurrency="32", SendRatePerSecond="2000", TenantSendRatePerSecond="2000",
                                BroadcastPageSize="500")
        app = Services(load_settings(settings))
        # The same client the app builds, with the counting hook: the cached property is filled in first.
        app.__dict__["table_service"] = TableServiceClient.from_connection_string(connection, raw_request_hook=count)
        app.addresses.save_many(
            [ConversationReference("bench", stub.url, ConversationAccount(f"ops-{i:06d}"), ChannelAccount(f"u-{i}"),
                                   ChannelAccount("bot")) for i in range(RECIPIENTS)], trusted=False)
        counts.clear()  # the seeding is not the broadcast's
        started = time.monotonic()
        status = run_broadcast(app, parallel=16)
        elapsed = time.monotonic() - started
    if status["sent"] != RECIPIENTS:
        raise RuntimeError(f"table ops broadcast sent {status['sent']} of {RECIPIENTS}")
    addresses_table = settings["AddressesTableName"]
    budget_table = settings["RateBudgetTableName"]
    scan = status["pages"] + 1  # one query per frozen page, and the last, empty answer
    # The tenant's rate budget costs a few operations per second per tenant, whatever the number of messages:
    # it is reported apart (figure 7 measures it at the channel's rate), not counted per message.
    budget = counts.pop(budget_table, 0)
    total = sum(counts.values()) - scan
    per_message = total / status["sent"]
    by_table = ", ".join(f"{name}: {n}" for name, n in sorted(counts.items()))
    return Figure(
        f"8. Table Storage operations per delivered message, {RECIPIENTS:,} recipients, address scan left out "
        f"(requests by table: {by_table}; scan: {scan} of the {counts[addresses_table]} on the addresses table; "
        f"the rate budget's row, apart: {budget} in {elapsed:.1f} s at TenantSendRatePerSecond 2000)",
        f"{per_message:.3f} ({total:,} requests)", "3 per message before the batched ledger (read, claim, finish)",
        f"{per_message / 3:.3f} of before", f"≤ {TARGET}", per_message <= TARGET)


if __name__ == "__main__":
    print(measure())
