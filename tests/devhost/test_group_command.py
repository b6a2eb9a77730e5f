"""The local chat's `/group` command and its Graph stub: people who never wrote, a group of them, their chats."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from devhost import run
from devhost.channel import LocalChannel, Repl, parse_group
from stubs.graph import GraphLimits, GraphStub, aad_id
from stubs.server import StubRequest, StubResponse, StubServer

NOTIFY_URL = "http://localhost:7071/api/notify"
APP_ID = "4e7b2a91-c3d5-4f68-9b0e-1a2c3d4e5f60"  # a MicrosoftAppId set by the developer


class Bot:
    """A messaging endpoint that records the activities and Authorization headers it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, Any], str]] = []
        self._lock = threading.Lock()
        self.server = StubServer(self._handle)

    def _handle(self, request: StubRequest) -> StubResponse:
        with self._lock:
            self.received.append((request.json(), request.headers.get("Authorization", "")))
        return StubResponse(200)

    def wait_for(self, kind: str, channel_id: str, timeout: float = 5.0) -> tuple[dict[str, Any], str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [r for r in self.received if r[0]["type"] == kind and r[0]["channelId"] == channel_id]
            if found:
                return found[0]
            time.sleep(0.01)
        raise AssertionError(f"no {kind} from {channel_id} reached the bot")


@pytest.fixture
def bot() -> Iterator[Bot]:
    endpoint = Bot()
    endpoint.server.start()
    yield endpoint
    endpoint.server.stop()


@pytest.fixture
def out() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def channel(bot: Bot, out: io.StringIO) -> Iterator[LocalChannel]:
    with LocalChannel(f"{bot.server.url}/api/messages", out=out, sign=lambda activity: "Bearer signed") as chat:
        yield chat


@pytest.fixture
def graph(channel: LocalChannel) -> Iterator[GraphStub]:
    with GraphStub(limits=GraphLimits.off()) as stub:
        stub.register_app(run.LOCAL_APP_ID, catalog_id="catalog-1")
        channel.attach_graph(stub)
        yield stub


@pytest.fixture
def repl(channel: LocalChannel, graph: GraphStub) -> Repl:
    return Repl(channel, NOTIFY_URL, graph)


def test_parse_group_takes_a_name_then_users_without_repeats() -> None:
    assert parse_group("  sales  alice bob alice ") == ("sales", ["alice", "bob"])


@pytest.mark.parametrize("argument", ["", "sales", "sales bob/smith", "sales 'bob'"])
def test_parse_group_refuses_a_group_without_users_or_a_name_that_is_not_one(argument: str) -> None:
    with pytest.raises(ValueError, match="usage: /group NAME USER"):
        parse_group(argument)


def test_group_command_makes_the_users_with_stable_ids_and_the_group_of_them(repl: Repl, graph: GraphStub) -> None:
    repl.handle("/group sales alice bob")

    group_users = graph.transitive_users(aad_id("sales", "group"))
    assert [(u.id, u.user_principal_name, u.display_name) for u in group_users] == [
        (aad_id("alice"), "alice@localchat.example", "alice"), (aad_id("bob"), "bob@localchat.example", "bob")]
    assert all(u.account_enabled and u.user_type == "Member" and u.licensed for u in group_users)


def test_group_command_prints_the_group_id_and_a_curl_line_that_broadcasts_to_it(repl: Repl, out: io.StringIO) -> None:
    repl.handle("/group sales alice bob")

    group_id = aad_id("sales", "group")
    printed = out.getvalue()
    [curl] = [line.strip() for line in printed.splitlines() if line.strip().startswith("curl ")]
    assert f"id {group_id}" in printed
    assert curl.startswith(f"curl -X POST {NOTIFY_URL} -H 'Content-Type: application/json' -d '")
    body = json.loads(curl.split(" -d ", 1)[1].strip("'"))
    assert body["to"] == {"group": group_id} and body["text"]


def test_group_command_again_reuses_the_users_and_sets_the_members(repl: Repl, graph: GraphStub) -> None:
    repl.handle("/group sales alice bob")
    repl.handle("/group sales bob carol")

    assert [u.display_name for u in graph.transitive_users(aad_id("sales", "group"))] == ["bob", "carol"]
    assert graph.user(aad_id("alice")) is not None


def test_group_command_with_bad_arguments_says_how_and_makes_nothing(repl: Repl, graph: GraphStub,
                                                                    out: io.StringIO) -> None:
    repl.handle("/group sales")

    assert "usage: /group NAME USER" in out.getvalue()
    assert graph.user(aad_id("sales")) is None


def test_group_command_without_a_graph_stub_says_so(channel: LocalChannel, out: io.StringIO) -> None:
    Repl(channel, NOTIFY_URL).handle("/group sales alice")

    assert "no Graph stub" in out.getvalue()


def test_an_install_reaches_the_bot_through_the_channel_and_its_messages_show_under_the_users_name(
        repl: Repl, graph: GraphStub, channel: LocalChannel, bot: Bot, out: io.StringIO) -> None:
    repl.handle("/user dora")
    repl.handle("/group sales alice")
    installed = requests.post(f"{graph.base_url}/users/{aad_id('alice')}/teamwork/installedApps", timeout=10,
                              json={"teamsApp@odata.bind": f"{graph.base_url}/appCatalogs/teamsApps/catalog-1"})

    update, authorization = bot.wait_for("conversationUpdate", "msteams")
    chat_id = update["conversation"]["id"]
    requests.post(f"{update['serviceUrl']}/v3/conversations/{quote(chat_id, safe='')}/activities", timeout=10,
                  json={"type": "message", "text": "Hello alice"}).raise_for_status()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "Hello alice" not in out.getvalue():
        time.sleep(0.01)

    assert installed.status_code == 201
    assert (update["serviceUrl"], update["from"]["aadObjectId"], authorization) == (
        channel.service_url, aad_id("alice"), "Bearer signed")
    assert "bot (to alice): Hello alice" in out.getvalue()
    assert graph.counters().conversation_updates_posted == 1


def test_start_graph_in_local_mode_sets_the_apps_graph_settings_and_the_catalog_id(
        channel: LocalChannel, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GraphBaseUrl", "TeamsServiceUrl", "TeamsAppCatalogId"):
        monkeypatch.delenv(name, raising=False)  # restored after the test

    graph = run.start_graph(channel, "")
    try:
        catalog = requests.get(f"{graph.base_url}/appCatalogs/teamsApps", timeout=10,
                               params={"$filter": f"externalId eq '{run.LOCAL_APP_ID}'"}).json()["value"]
    finally:
        graph.stop()

    assert os.environ["GraphBaseUrl"] == graph.base_url and graph.base_url.endswith("/v1.0")
    assert os.environ["TeamsServiceUrl"] == channel.service_url == graph.service_url
    assert [app["id"] for app in catalog] == [os.environ["TeamsAppCatalogId"]]


def test_start_graph_with_an_app_id_registers_it_and_leaves_the_catalog_id_to_the_app(
        channel: LocalChannel, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GraphBaseUrl", "TeamsServiceUrl", "TeamsAppCatalogId"):
        monkeypatch.delenv(name, raising=False)

    graph = run.start_graph(channel, APP_ID)
    try:
        catalog = requests.get(f"{graph.base_url}/appCatalogs/teamsApps", timeout=10,
                               params={"$filter": f"externalId eq '{APP_ID}'"}).json()["value"]
    finally:
        graph.stop()

    assert len(catalog) == 1 and "TeamsAppCatalogId" not in os.environ
