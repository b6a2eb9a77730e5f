"""Figure 14, the authors' page: load to interactive, and what one viewer's status poll costs in Table Storage.

Load: Debian's headless Chromium (Playwright) opens the page on the dev host (a subprocess, signed in as the
local author as `make run` does it), with a full first page of the list (LISTED notifications, each with its
status); the clock runs from the navigation's start (`performance.timeOrigin`) to the moment portal.js sets
`body[data-ready=true]`, once it has read who is signed in and rendered the list (a MutationObserver notes
`performance.now()` then). Baseline: the page's own stylesheet opened the same way, from the same host and
function, navigation start to its load event. A fresh browser context (no cache, no connection) for every load;
runs alternate, median of the per-pair ratios.

Poll: the Table Storage requests one `GET /api/notify/{id}` costs (the page's `api/notify/{id}` calls the same
`api.status`) once a broadcast is done, counted at the HTTP layer as figure 8 counts them (an entity-group
transaction or a page of a query is one request), for a small audience and a large one. The page summaries grow
with the audience (one row per BroadcastPageSize recipients), but they are read by one partition query, so the
requests should not.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from urllib.parse import urlparse

import requests

from bench.common import Figure, app_settings, median, paired_ratio, run_broadcast, storage
from bench.host_process import HostProcess
from bench.stub_process import StubProcess

RUNS = 15
LISTED = 20  # the list's first page (portal.js asks for 20)
LISTED_AUDIENCE = 20
LOAD_TARGET = 10.0  # × the stylesheet
SMALL, LARGE = 100, 2500  # 1 page and 5 (5,000 doubles the run for the same answer)
POLLS = 5
POLL_TARGET = 1.0  # large ÷ small

# Installed before the page's own scripts: the time (ms after navigation start) data-ready became "true".
READY_PROBE = """
new MutationObserver((_, observer) => {
  if (document.body && document.body.dataset.ready === "true") {
    window.__benchReady = performance.now();
    observer.disconnect();
  }
}).observe(document, {attributes: true, subtree: true, attributeFilter: ["data-ready"]});
"""
LOADED = """() => { const n = performance.getEntriesByType("navigation")[0]; return n.loadEventEnd || n.responseEnd; }"""


def table_of(url: str) -> str:
    """The table a Table Storage request is about ("$batch" for a transaction, "Tables" for the table list)."""
    return urlparse(url).path.strip("/").split("/")[-1].split("(")[0] or "?"


def _seed_notifications(host_url: str, count: int) -> None:
    """`count` broadcasts through the host's API, each to everyone saved, and wait until all are done."""
    statuses = []
    for n in range(count):
        answer = requests.post(f"{host_url}/api/notify", timeout=30,
                               json={"id": f"bench-page-{n:02d}-{uuid.uuid4().hex[:6]}", "to": "all",
                                     "text": f"Bench notification {n}"})
        if answer.status_code != 202:
            raise RuntimeError(f"POST /api/notify answered {answer.status_code}: {answer.text[:300]}")
        statuses.append(answer.json()["status"])
    deadline = time.monotonic() + 60
    while statuses and time.monotonic() < deadline:
        statuses = [url for url in statuses if requests.get(url, timeout=10).json().get("state") != "done"]
        time.sleep(0.2)
    if statuses:
        raise RuntimeError(f"{len(statuses)} of the seeded notifications not done after 60 s")


def _load(browser: object, url: str, *, ready: bool) -> float:
    """Milliseconds from navigation start to interactive (`ready`) or loaded, in a fresh context."""
    context = browser.new_context()  # type: ignore[attr-defined]
    try:
        page = context.new_page()
        if ready:
            page.add_init_script(READY_PROBE)
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]", state="attached", timeout=30_000)
            if page.locator("#error").is_visible():
                raise RuntimeError(f"the page shows an error: {page.locator('#error').text_content()}")
            return float(page.evaluate("window.__benchReady"))
        page.goto(url, wait_until="load")
        return float(page.evaluate(LOADED))
    finally:
        context.close()


def measure_load() -> Figure:
    from devhost.chromium import chromium, chromium_missing
    from shared_code.app.services import Services
    from shared_code.plumbing.settings import load_settings
    from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference

    if chromium_missing():
        raise RuntimeError(f"figure 14 needs Chromium: {chromium_missing()}")
    with storage() as connection, StubProcess(0.0) as stub:
        settings = app_settings(connection, TenantSendRatePerSecond="1000", SendRatePerSecond="1000")
        Services(load_settings(settings)).addresses.save_many(
            [ConversationReference("bench", stub.url, ConversationAccount(f"page-{i:03d}"), ChannelAccount(f"u-{i}"),
                                   ChannelAccount("bot")) for i in range(LISTED_AUDIENCE)], trusted=False)
        with HostProcess(settings, module="bench.portal_host") as host:
            _seed_notifications(host.url, LISTED)
            page_url, css_url = f"{host.url}/api/portal/", f"{host.url}/api/portal/portal.css"
            ours: list[float] = []
            baseline: list[float] = []
            with chromium() as browser:
                _load(browser, page_url, ready=True), _load(browser, css_url, ready=False)  # warm-up, not counted
                for _ in range(RUNS):
                    ours.append(_load(browser, page_url, ready=True))
                    baseline.append(_load(browser, css_url, ready=False))
    ratio = paired_ratio(ours, baseline)
    return Figure(
        f"14. the authors' page, load to interactive: headless Chromium (Debian's, Playwright) on the dev host "
        f"(subprocess, Azurite, signed in as the local author), a fresh context each load, navigation start to "
        f"body[data-ready=true] (signed-in author read, the list's first {LISTED} notifications rendered, each "
        f"with its status); baseline: the page's stylesheet from the same host, navigation start to load; "
        f"median of {RUNS}, alternating",
        f"{median(ours):.0f} ms (fastest {min(ours):.0f}, slowest {max(ours):.0f})",
        f"{median(baseline):.0f} ms", f"{ratio:.1f}×", f"≤ {LOAD_TARGET:.0f}×", ratio <= LOAD_TARGET)


def _poll_cost(connection: str, stub_url: str, recipients: int) -> tuple[Counter[str], int, dict]:
    """Requests by table of one status read, after a broadcast to `recipients`; (counts, pages, status)."""
    from azure.data.tables import TableServiceClient

    from shared_code.app.services import Services
    from shared_code.notifications import api
    from shared_code.plumbing.settings import load_settings
    from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference

    counts: Counter[str] = Counter()
    lock = threading.Lock()
    settings = app_settings(connection, SendConcurrency="32", SendRatePerSecond="2000", TenantSendRatePerSecond="2000")
    suffix = settings["NotificationsTableName"].removeprefix("notif")  # tables are named by kind + the run's suffix

    def count(request: object) -> None:
        with lock:
            counts[table_of(request.http_request.url).removesuffix(suffix)] += 1  # type: ignore[attr-defined]

    app = Services(load_settings(settings))
    app.__dict__["table_service"] = TableServiceClient.from_connection_string(connection, raw_request_hook=count)
    app.addresses.save_many(
        [ConversationReference("bench", stub_url, ConversationAccount(f"poll-{i:06d}"), ChannelAccount(f"u-{i}"),
                               ChannelAccount("bot")) for i in range(recipients)], trusted=False)
    status = run_broadcast(app, parallel=16)
    if status["sent"] != recipients:
        raise RuntimeError(f"poll cost broadcast sent {status['sent']} of {recipients}")
    polls: list[Counter[str]] = []
    for _ in range(POLLS):
        counts.clear()
        answer = api.status(status["id"], app)
        polls.append(Counter(counts))
        if answer.status != 200:
            raise RuntimeError(f"status answered {answer.status}")
    if any(p != polls[0] for p in polls):
        raise RuntimeError(f"one poll's requests vary from poll to poll: {polls}")
    return polls[0], int(status["pages"]), status


def poll_row(small: Counter[str], large: Counter[str], small_pages: int, large_pages: int) -> tuple[str, str, float]:
    """(ours, baseline, ratio) of the poll figure: requests per poll by table, the large audience's over the small's."""
    def said(counts: Counter[str]) -> str:
        return ", ".join(f"{table} {n}" for table, n in sorted(counts.items()))

    def pages(n: int) -> str:
        return f"{n} page{'' if n == 1 else 's'}"

    few, many = sum(small.values()), sum(large.values())
    return (f"{LARGE:,} recipients ({pages(large_pages)}): {many} requests ({said(large)})",
            f"{SMALL:,} recipients ({pages(small_pages)}): {few} requests ({said(small)})", many / few)


def measure_poll() -> Figure:
    with storage() as connection, StubProcess(0.0) as stub:
        started = time.monotonic()
        small, small_pages, _ = _poll_cost(connection, stub.url, SMALL)
        large, large_pages, _ = _poll_cost(connection, stub.url, LARGE)
        elapsed = time.monotonic() - started
    ours, baseline, ratio = poll_row(small, large, small_pages, large_pages)
    return Figure(
        f"14. the authors' page, one viewer's status poll (GET /api/notify/{{id}}, which the page's api/notify/{{id}} "
        f"calls): Table Storage requests per poll once the broadcast is done, counted at the HTTP layer, "
        f"{LARGE:,} vs {SMALL:,} recipients, BroadcastPageSize 500 (default): the page summaries grow with the "
        f"audience, read by one partition query; {POLLS} polls each, all alike ({elapsed:.0f} s with the broadcasts)",
        ours, baseline, f"{ratio:.2f}", f"{POLL_TARGET:.0f} (constant in the audience)", ratio <= POLL_TARGET)


def measure() -> list[Figure]:
    return [measure_load(), measure_poll()]


if __name__ == "__main__":
    for figure in measure():
        print(figure)
