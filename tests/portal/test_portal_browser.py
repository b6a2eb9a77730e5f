"""The authors' page in headless Chromium: compose, preview, send, watch, edit, recall, download, and text
shown as text; against the dev host, Azurite and the connector stub."""

from __future__ import annotations

import csv
import io
import json

import pytest

from tests.portal.chromium import chromium_missing

if chromium_missing():
    pytest.skip(chromium_missing(), allow_module_level=True)

from tests.portal.browser import chromium, portal_host, save_conversations  # noqa: E402

# One worker runs them all, with one browser, starting early: together they are one of the suite's long runs.
pytestmark = [pytest.mark.xdist_group("browser"), pytest.mark.slow]

HOSTILE = '<img src=x onerror="window.pwned=1"><b>bold?</b>'


@pytest.fixture(scope="module")
def browser():
    with chromium() as running:
        yield running


@pytest.fixture
def page(browser, app_env, connector):
    app_env.set(TenantSendRatePerSecond="1000", SendRatePerSecond="1000")
    with portal_host() as host:
        context = browser.new_context(accept_downloads=True, base_url=host.url)
        tab = context.new_page()
        tab.portal_url = f"{host.url}/api/portal/"
        yield tab
        context.close()


def open_page(page, fragment: str = "") -> None:
    page.goto(page.portal_url + fragment)
    page.wait_for_selector("body[data-ready=true]", state="attached")


def api(page, method: str, path: str, body: object = None) -> dict:
    """The page's own API, called from the page (the session's headers, the anti-forgery header)."""
    return page.evaluate("""async ([method, path, body]) => {
        const init = {method, headers: {"X-Portal-Request": "1", "Content-Type": "application/json"}};
        if (body !== null) init.body = JSON.stringify(body);
        return await (await fetch("api/" + path, init)).json();
    }""", [method, path, body])


def confirm(page) -> None:
    page.wait_for_selector("#confirm[open]")
    page.get_by_role("button", name="Yes").click()


def wait_for_state(page, state: str) -> None:
    page.wait_for_function("s => document.getElementById('detail-state').textContent === s", arg=state, timeout=30_000)


def test_an_author_previews_the_audience_confirms_its_count_and_watches_50_messages_arrive(page, connector):
    save_conversations(connector.url, 50)
    open_page(page, "#/new")

    page.get_by_label("Message", exact=True).fill("Quarterly results are out")
    page.get_by_role("button", name="Preview the audience").click()
    page.wait_for_selector("#audience-count:has-text('50 recipients')")
    page.get_by_role("button", name="Send…").click()
    page.wait_for_selector("#confirm[open]")
    question = page.locator("#confirm-text").text_content()
    page.get_by_role("button", name="Yes").click()
    wait_for_state(page, "done")

    assert "50 recipients" in question
    assert page.locator("#progress").evaluate("p => [p.value, p.max]") == [50, 50]
    assert sum(connector.texts(c).count("Quarterly results are out") for c in connector.all_activities()) == 50
    page.reload()
    wait_for_state(page, "done")
    assert "50 of 50 done" in page.locator("#progress-text").text_content()


def test_an_author_edits_then_recalls_a_notification_and_downloads_its_report(page, connector):
    conversations = save_conversations(connector.url, 50)
    open_page(page)
    api(page, "POST", "notify", {"id": "n-edit", "to": "all", "text": "Meeting at 10"})
    page.goto(page.portal_url + "#/n/n-edit")
    wait_for_state(page, "done")

    page.get_by_role("button", name="Edit…").click()
    page.get_by_label("New text").fill("Meeting at 11")
    page.get_by_role("button", name="Update every delivered message").click()
    confirm(page)
    page.wait_for_function("() => document.getElementById('counts').textContent.includes('Updated50')", timeout=30_000)
    edited = {connector.texts(c)[-1] for c in conversations}
    page.get_by_role("button", name="Recall…").click()
    confirm(page)
    page.wait_for_function("() => document.getElementById('counts').textContent.includes('Recalled50')", timeout=30_000)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the report (CSV)").click()
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))

    assert edited == {"Meeting at 11"}
    assert not any(text.startswith("Meeting") for c in conversations for text in connector.texts(c))
    assert len(rows) == 50 and {row["state"] for row in rows} == {"sent"}
    audit = [item.text_content() for item in page.locator("#audit li").all()]
    assert [line.split(": ")[1] for line in audit] == ["created by Local author", "edited by Local author",
                                                       "recalled by Local author"]


def test_html_in_a_message_is_shown_as_text_in_the_preview_and_the_list(page, connector):
    save_conversations(connector.url, 1)
    open_page(page, "#/new")

    page.get_by_label("Message", exact=True).fill(HOSTILE)
    preview = page.locator("#preview .text").text_content()
    api(page, "POST", "notify", {"id": "n-html", "to": "all", "text": HOSTILE})
    open_page(page)

    assert preview == HOSTILE
    assert page.locator("#list tbody a").first.text_content() == HOSTILE
    assert page.locator("#preview img, #list img").count() == 0
    assert page.evaluate("() => window.pwned") is None


def test_a_cards_text_and_facts_are_previewed_as_text(page):
    card = {"type": "AdaptiveCard", "version": "1.5", "body": [
        {"type": "TextBlock", "text": "Outage <script>alert(1)</script>", "weight": "Bolder"},
        {"type": "FactSet", "facts": [{"title": "Where", "value": "Building 2"}]}],
        "actions": [{"type": "Action.OpenUrl", "title": "Status", "url": "https://status.example.com"}]}
    open_page(page, "#/new")

    page.get_by_role("radio", name="Adaptive Card").check()
    page.get_by_label("Card JSON (an Adaptive Card)").fill(json.dumps(card))

    assert page.locator("#preview .tb").text_content() == "Outage <script>alert(1)</script>"
    assert page.locator("#preview dt").text_content() == "Where"
    assert page.locator("#preview .card-actions a").get_attribute("href") == "https://status.example.com"
    assert page.locator("#preview script").count() == 0


def test_without_platform_authentication_the_page_says_it_is_not_signed_in(browser, app_env):
    with portal_host(signed_in=False) as host:
        tab = browser.new_page()
        tab.goto(f"{host.url}/api/portal/")
        tab.wait_for_selector("body[data-ready=true]", state="attached")

        assert "Not signed in" in tab.locator("#error").text_content()
        tab.close()


def test_every_control_of_the_compose_form_has_a_label_and_the_view_takes_the_focus(page):
    open_page(page, "#/new")

    unlabelled = page.evaluate("""() => [...document.querySelectorAll("#view-new input, #view-new select, #view-new textarea")]
        .filter((c) => !c.labels.length && !c.getAttribute("aria-label")).map((c) => c.id || c.name)""")

    assert unlabelled == []
    assert page.evaluate("() => document.activeElement.id") in ("new-title", "text")
