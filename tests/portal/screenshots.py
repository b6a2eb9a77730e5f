"""The README's pictures of the authors' page, taken from the app as it is: `make screenshots`.

Runs the app on the dev host (Azurite from `python -m devhost.azurite --`, the connector stub, the local author
signed in), gives it 40 people and two notifications, and saves the list, the compose form with its preview
and a notification's page in docs/screenshots/.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

from shared_code.plumbing.settings import storage_names
from stubs.connector import ConnectorStub
from tests.portal.browser import ROOT, chromium, portal_host, save_conversations

OUT = ROOT / "docs" / "screenshots"
SIZE = {"width": 1200, "height": 820}


def main() -> int:
    if not os.environ.get("AzureWebJobsStorage"):
        print("run it under Azurite: make screenshots", file=sys.stderr)
        return 2
    os.environ.update({"MicrosoftAppId": "", **storage_names(uuid.uuid4().hex[:10]), "TenantSendRatePerSecond": "1000"})
    OUT.mkdir(parents=True, exist_ok=True)
    with ConnectorStub() as connector:
        os.environ["TrustedServiceUrls"] = connector.url
        save_conversations(connector.url, 40)
        with portal_host() as host, chromium() as browser:
            page = browser.new_page(viewport=SIZE)
            base = f"{host.url}/api/portal/"
            page.goto(base)
            page.wait_for_selector("body[data-ready=true]", state="attached")
            send = """async (body) => (await fetch("api/notify", {method: "POST", body: JSON.stringify(body),
                headers: {"X-Portal-Request": "1", "Content-Type": "application/json"}})).json()"""
            page.evaluate(send, {"id": "release-42", "to": "all", "text": "Version 42 is out: see what changed.",
                                 "ack": {"title": "Got it"}})
            page.evaluate(send, {"id": "maintenance", "to": "all", "text": "Maintenance tonight, 22:00-23:00.",
                                 "notBefore": "2099-01-01T21:00:00Z"})
            page.goto(base + "#/n/release-42")
            page.wait_for_function("() => document.getElementById('detail-state').textContent === 'done'",
                                   timeout=60_000)
            page.screenshot(path=str(OUT / "notification.png"), full_page=True)
            page.goto(base + "#/")
            page.wait_for_selector("#list tbody tr")
            time.sleep(0.3)
            page.screenshot(path=str(OUT / "list.png"))
            page.goto(base + "#/new")
            page.get_by_label("Message", exact=True).fill("The office is closed on Friday.")
            page.get_by_label("Add an acknowledge button").check()
            page.get_by_role("button", name="Preview the audience").click()
            page.wait_for_selector("#audience-count:has-text('recipients')")
            page.screenshot(path=str(OUT / "compose.png"), full_page=True)
    for name in ("list", "compose", "notification"):
        print(OUT / f"{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
