"""Teams on the real auth path: a team saved from a signed install gets the bot's token for its roster and 1:1s."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import MessagesFunction
from shared_code.app import services
from shared_code.notifications.audience import roster
from shared_code.protocol.connector import RosterMember
from stubs.connector import ConnectorStub
from stubs.openid import OpenIdStub
from stubs.token import TokenStub
from tests.support.builders import http_request
from tests.support.teams import TEAM_ID, TENANT, payload

APP_ID, APP_PASSWORD = "test-app-id", "test-app-password"


@pytest.fixture
def openid() -> Iterator[OpenIdStub]:
    with OpenIdStub(APP_ID) as stub:
        yield stub


@pytest.fixture
def channel(token_stub: TokenStub) -> Iterator[ConnectorStub]:
    with ConnectorStub(token_check=token_stub.is_valid) as stub:
        yield stub


@pytest.fixture
def installed(app_env, openid, token_stub, channel):
    app_env.set(**openid.settings_env(APP_ID), MicrosoftAppPassword=APP_PASSWORD,
                ToChannelFromBotLoginUrl=token_stub.login_url())
    activity = payload("bot_added_to_team", channel.url)
    response = MessagesFunction.main(http_request("POST", "http://localhost/api/messages", activity,
                                                  headers={"Authorization": openid.sign_activity(activity)}))
    assert response.status_code == 200
    channel.add_team(TEAM_ID, ["29:ada", "29:bob"], tenant_id=TENANT)


def test_team_saved_from_a_signed_install_is_trusted(installed):
    assert services.get().teams.get(TEAM_ID).service_url_trusted is True


def test_roster_and_personal_conversation_carry_the_bots_token(installed, channel):
    page = roster.read_page(TEAM_ID, services.get())
    address = roster.personal_address(RosterMember("29:bob"), page.team, services.get())

    assert [m.id for m in page.members] == ["29:ada", "29:bob"]
    assert address.service_url_trusted and address.reference.user.id == "29:bob"
    assert all(had_token for _, _, had_token in channel.requests)
    assert channel.conversations_created == 1


def test_unsigned_team_install_saves_no_team(app_env, openid, token_stub, channel):
    app_env.set(**openid.settings_env(APP_ID), MicrosoftAppPassword=APP_PASSWORD,
                ToChannelFromBotLoginUrl=token_stub.login_url())

    response = MessagesFunction.main(http_request("POST", "http://localhost/api/messages",
                                                  payload("bot_added_to_team", channel.url)))

    assert response.status_code == 401
    assert services.get().teams.get(TEAM_ID) is None
