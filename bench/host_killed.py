"""Figure 12, a host killed in the middle of a broadcast: the time from the kill to the next delivery, with the
default settings (target ≤ 60 s).

2,000 recipients in one tenant; the connector stub in its own process at the channel's limit (50 sends a second
per tenant, sliding second, 429 above), 20 ms a send. A dev host process takes the broadcast (all four page jobs,
500 recipients each); a second one is started once the first holds them all, so that it is running and idle when
the first is killed (SIGKILL, by its pid) about 2 s after the first delivery. Every delivery after the kill is then
the second host's, once a page's watchdog has found the dead host's heartbeat stale and re-issued the page
(shared_code/notifications/sending/watch.py). The dead host's last sends land within the stub's latency of the kill:
the next delivery is the first more than a second after it. The baseline is what the page waited before the
watchdog: the dead host's lease on the page's queue message, ten minutes. Also checked: nobody got the message
twice, and at most SendConcurrency recipients ended `outcome_unknown`.
"""

from __future__ import annotations

import time
from collections import Counter

from bench.common import Figure, app_settings, storage
from bench.host_process import HostProcess
from bench.stub_process import StubProcess

RECIPIENTS = 2000
LIMIT = 50
PAGES = 4  # BroadcastPageSize 500, the default
KILL_AFTER = 2.0  # seconds after the first delivery
STRAGGLERS = 1.0  # the dead host's sends in flight land within the stub's latency (20 ms) of the kill
LEASE = 600.0  # devhost.queue_trigger.LEASE_SECONDS, as the Functions host holds a running message
TARGET = 60.0
SEND_CONCURRENCY = 16  # the default
TIMEOUT = 300.0
TEXT = "the host dies"


def _seed(settings: dict[str, str], url: str) -> None:
    from shared_code.app.services import Services
    from shared_code.plumbing.settings import load_settings
    from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference

    Services(load_settings(settings)).addresses.save_many([
        ConversationReference("msteams", url, ConversationAccount(f"kill-{i:06d}", tenant_id="tenant-a"),
                              ChannelAccount(f"29:{i}"), ChannelAccount("28:bot"), tenant_id="tenant-a")
        for i in range(RECIPIENTS)], trusted=False)


def _until(what: str, done, timeout: float = TIMEOUT, poll: float = 0.1):
    deadline = time.monotonic() + timeout
    while not (found := done()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} after {timeout:.0f} s")
        time.sleep(poll)
    return found


def _done(app) -> dict | None:
    status = app.notifications.status("killed").to_json()
    return status if status["state"] == "done" else None


def _run(connection: str) -> dict:
    from shared_code.app.services import Services
    from shared_code.notifications.audience import fanout
    from shared_code.notifications.jobs import parse_job
    from shared_code.plumbing.settings import load_settings

    with StubProcess(0.02, tenant_limit=LIMIT) as stub:
        settings = app_settings(connection)
        _seed(settings, stub.url)
        app = Services(load_settings(settings))
        first, second = HostProcess(settings), HostProcess(settings)
        try:
            first.__enter__()
            fanout.start(parse_job({"v": 1, "id": "killed", "to": "all", "text": TEXT}), app)
            _until("page jobs running on the first host",
                   lambda: len(pages := app.notifications.pages("killed")[0]) == PAGES and all(p.runs for p in pages))
            second.__enter__()
            first_delivery = _until("delivery", lambda: stub.stats()["first"])
            time.sleep(max(0.0, first_delivery + KILL_AFTER - time.time()))
            killed = time.time()
            first.kill()
            status = _until("end of the broadcast", lambda: _done(app), poll=1.0)
            unknown = sum(1 for page in app.notifications.pages("killed")[0]
                          for record in app.ledger.page("killed", page.page).values() if record.code == "outcome_unknown")
        finally:
            second.__exit__(None, None, None)
            first.__exit__(None, None, None)
        arrivals = sorted(at for _, text, at in stub.messages() if text == TEXT)
        received = Counter(conversation for conversation, text, _ in stub.messages() if text == TEXT)
    after = [at for at in arrivals if at > killed + STRAGGLERS]
    if not after:
        raise RuntimeError("nothing was delivered after the kill")
    return {"next": after[0] - killed, "last": arrivals[-1] - killed, "before": len(arrivals) - len(after),
            "twice": sum(1 for n in received.values() if n > 1),
            "unknown": unknown,
            "sent": status["sent"], "failed": status["failed"], "first": first_delivery - killed}


def measure() -> Figure:
    with storage() as connection:
        run = _run(connection)
    met = run["next"] <= TARGET and run["twice"] == 0 and run["unknown"] <= SEND_CONCURRENCY \
        and run["sent"] + run["failed"] == RECIPIENTS
    return Figure(
        f"12. a host killed (SIGKILL) {-run['first']:.1f} s after a broadcast's first delivery: {RECIPIENTS:,} "
        f"recipients at the channel's limit ({LIMIT}/s per tenant), {PAGES} pages on the killed dev host process, a "
        "second one already running; default settings (PageWatchSeconds 20, DeliveryLeaseSeconds 60, "
        f"SendConcurrency {SEND_CONCURRENCY}); time from the kill to the next delivery",
        f"{run['next']:.1f} s; last delivery {run['last']:.0f} s after the kill ({run['before']} before it); "
        f"sent {run['sent']}, outcome_unknown {run['unknown']}, twice {run['twice']}",
        f"{LEASE:.0f} s: the dead host's lease on the page's queue message", f"{run['next'] / LEASE:.3f}",
        f"≤ {TARGET:.0f} s, nobody twice, outcome_unknown ≤ {SEND_CONCURRENCY}", met)


if __name__ == "__main__":
    print(measure())
