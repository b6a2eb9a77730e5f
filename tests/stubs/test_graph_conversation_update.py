"""What the Graph stub does after an install, as Teams does: a personal conversationUpdate to the bot, when told."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from stubs.connector import ConnectorStub
from stubs.graph import Delivery, GraphLimits, GraphStub, teams_user_id
from stubs.server import StubRequest, StubResponse, StubServer

BOT_APP_ID = "e3a9c7b1-4d2f-4b86-9e05-7c1a3f8d2b60"
CATALOG_ID = "91d4b6e8-2c7a-4f03-b5e9-0a8c6d3f1e27"


class Bot:
    """A messaging endpoint that records what it receives (activity, Authorization header, when)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[dict[str, Any], str, float]] = []
        self._lock = threading.Lock()
        self.server = StubServer(self._handle)

    @property
    def url(self) -> str:
        return f"{self.server.url}/api/messages"

    def _handle(self, request: StubRequest) -> StubResponse:
        with self._lock:
            self.received.append((request.json(), request.headers.get("Authorization", ""), time.monotonic()))
        return StubResponse(self.status)

    def activities(self) -> list[dict[str, Any]]:
        with self._lock:
            return [activity for activity, _, _ in self.received]

    def wait(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.activities()) < count:
            time.sleep(0.01)
        return self.activities()


@pytest.fixture
def bot() -> Iterator[Bot]:
    endpoint = Bot()
    endpoint.server.start()
    yield endpoint
    endpoint.server.stop()


@pytest.fixture
def connector() -> Iterator[ConnectorStub]:
    with ConnectorStub() as stub:
        yield stub


@pytest.fixture
def graph(bot: Bot, connector: ConnectorStub) -> Iterator[GraphStub]:
    with GraphStub(service_url=connector.url, bot_url=bot.url, limits=GraphLimits.off()) as stub:
        stub.register_app(BOT_APP_ID, catalog_id=CATALOG_ID, display_name="Notifier")
        yield stub


def install(graph: GraphStub, user: str) -> requests.Response:
    return requests.post(f"{graph.base_url}/users/{user}/teamwork/installedApps", timeout=10,
                         json={"teamsApp@odata.bind": f"{graph.base_url}/appCatalogs/teamsApps/{CATALOG_ID}"})


def test_install_posts_a_personal_conversation_update_to_the_bot(graph: GraphStub, bot: Bot,
                                                                 connector: ConnectorStub) -> None:
    user = graph.add_user()

    assert install(graph, user.id).status_code == 201
    [activity] = bot.wait(1)

    assert activity["id"] and activity["timestamp"].endswith("Z")
    assert {k: v for k, v in activity.items() if k not in ("id", "timestamp")} == {
        "type": "conversationUpdate",
        "channelId": "msteams",
        "serviceUrl": connector.url,
        "from": {"id": user.teams_id, "aadObjectId": user.id},
        "recipient": {"id": f"28:{BOT_APP_ID}", "name": "Notifier"},
        "conversation": {"conversationType": "personal", "tenantId": graph.tenant_id,
                         "id": f"19:{user.id}_{BOT_APP_ID}@unq.gbl.spaces"},
        "membersAdded": [{"id": f"28:{BOT_APP_ID}"}],
        "channelData": {"tenant": {"id": graph.tenant_id}},
    }
    assert graph.counters().conversation_updates_posted == 1


def test_conversation_update_names_the_chat_graph_reports(graph: GraphStub, bot: Bot) -> None:
    user = graph.add_user()
    install(graph, user.id)
    installation = graph.installation(user.id)

    chat = requests.get(f"{graph.base_url}/users/{user.id}/teamwork/installedApps/"
                        f"{quote(installation.id, safe='')}/chat", timeout=10).json()

    assert bot.wait(1)[0]["conversation"]["id"] == chat["id"]


def test_users_teams_id_is_derived_from_the_aad_id_and_the_same_everywhere(graph: GraphStub, bot: Bot) -> None:
    user = graph.add_user("2c5e8a1f-6b3d-4f90-a7c2-9e4d1b8f6a35")
    install(graph, user.id)

    [activity] = bot.wait(1)

    assert activity["from"]["id"] == graph.user(user.id).teams_id == teams_user_id(user.id)
    with GraphStub() as other:
        assert other.add_user(user.id).teams_id == activity["from"]["id"]


def test_conversation_update_is_signed_by_the_sign_callable(graph: GraphStub, bot: Bot) -> None:
    signed: list[str] = []
    graph.sign = lambda activity: signed.append(activity["type"]) or "Bearer channel-token"
    install(graph, graph.add_user().id)

    bot.wait(1)

    assert [auth for _, auth, _ in bot.received] == ["Bearer channel-token"] and signed == ["conversationUpdate"]


def test_sends_to_the_new_chat_are_accepted_and_recorded_by_the_connector(graph: GraphStub, bot: Bot,
                                                                          connector: ConnectorStub) -> None:
    user = graph.add_user()
    install(graph, user.id)
    reference = bot.wait(1)[0]

    answer = requests.post(f"{reference['serviceUrl']}/v3/conversations/{quote(reference['conversation']['id'])}"
                           "/activities", json={"type": "message", "text": "hello"}, timeout=10)

    assert answer.status_code == 200
    assert connector.texts(graph.chat_id_for(user.id)) == ["hello"]


def test_held_conversation_update_arrives_only_when_released_after_a_first_send(graph: GraphStub, bot: Bot,
                                                                               connector: ConnectorStub) -> None:
    graph.delivery = Delivery.HELD
    user = graph.add_user()
    install(graph, user.id)
    chat_id = graph.chat_id_for(user.id)
    sent = requests.post(f"{connector.url}/v3/conversations/{quote(chat_id)}/activities",
                         json={"type": "message", "text": "first"}, timeout=10)
    time.sleep(0.1)
    before = bot.activities()

    released = graph.release()

    assert sent.status_code == 200 and before == []
    assert [p.delivered for p in released] == [True]
    assert [a["conversation"]["id"] for a in bot.activities()] == [chat_id]
    assert graph.held == []


def test_delayed_conversation_update_arrives_after_the_delay(graph: GraphStub, bot: Bot) -> None:
    graph.delivery, graph.delivery_delay = Delivery.DELAYED, 0.4
    started = time.monotonic()
    install(graph, graph.add_user().id)
    time.sleep(0.15)
    early = bot.activities()

    bot.wait(1)

    assert early == [] and len(bot.received) == 1
    assert bot.received[0][2] - started >= 0.4


def test_delivery_off_posts_nothing(graph: GraphStub, bot: Bot) -> None:
    graph.delivery = Delivery.OFF

    assert install(graph, graph.add_user().id).status_code == 201
    time.sleep(0.2)

    assert bot.activities() == [] and graph.conversation_updates == []


def test_a_send_callable_replaces_the_post(graph: GraphStub, bot: Bot) -> None:
    taken: list[dict[str, Any]] = []
    graph.send = taken.append
    install(graph, graph.add_user().id)

    posted = graph.wait_for_conversation_updates(1)

    assert [a["type"] for a in taken] == ["conversationUpdate"] and bot.activities() == []
    assert posted[0].delivered


def test_an_install_made_beforehand_posts_nothing_unless_asked(graph: GraphStub, bot: Bot) -> None:
    quiet, told = graph.add_user(), graph.add_user()

    graph.install(quiet.id)
    graph.install(told.id, notify=True)

    assert [a["from"]["aadObjectId"] for a in bot.wait(1)] == [told.id]
    time.sleep(0.1)
    assert len(bot.activities()) == 1 and graph.installs == 0


def test_a_refused_install_posts_no_conversation_update(graph: GraphStub, bot: Bot) -> None:
    user = graph.add_user()
    install(graph, user.id)
    bot.wait(1)

    assert install(graph, user.id).status_code == 409
    time.sleep(0.1)

    assert len(bot.activities()) == 1


def test_a_bot_that_fails_is_recorded_not_counted_as_posted(graph: GraphStub, bot: Bot) -> None:
    bot.status = 500
    install(graph, graph.add_user().id)

    [posted] = graph.wait_for_conversation_updates(1)

    assert (posted.status, posted.delivered) == (500, False)
    assert graph.counters().conversation_updates_posted == 0
