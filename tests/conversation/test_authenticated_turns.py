"""The real auth path through the functions: signed activities in, tokens out to trusted URLs only."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

import MessagesFunction
import NotifyFunction
from shared_code.app import services
from stubs.connector import ConnectorStub
from stubs.openid import OpenIdStub
from stubs.token import TokenStub
from tests.support.builders import http_request, message

APP_ID, APP_PASSWORD = "test-app-id", "test-app-password"


@pytest.fixture
def openid() -> Iterator[OpenIdStub]:
    with OpenIdStub(APP_ID) as stub:
        yield stub


@pytest.fixture
def channel(token_stub: TokenStub) -> Iterator[ConnectorStub]:
    """A connector that, like the real one, refuses requests without a token from the login service."""
    with ConnectorStub(token_check=token_stub.is_valid) as stub:
        yield stub


@pytest.fixture
def auth_env(app_env, openid, token_stub):
    app_env.set(**openid.settings_env(APP_ID), MicrosoftAppPassword=APP_PASSWORD,
                ToChannelFromBotLoginUrl=token_stub.login_url())
    return app_env


def post_signed(activity: dict, openid: OpenIdStub):
    return MessagesFunction.main(http_request("POST", "http://localhost/api/messages", activity,
                                              headers={"Authorization": openid.sign_activity(activity)}))


def test_a_signed_message_is_answered_with_the_bots_token(auth_env, openid, channel, token_stub):
    response = post_signed(message(channel.url, "hi", conversation_id="conv-1"), openid)

    assert response.status_code == 200
    assert len(channel.activities("conv-1")) == 1
    assert channel.requests[-1][2] is True  # it carried a bearer token the login stub issued
    assert token_stub.fetches == 1


def test_a_signed_message_saves_a_trusted_address(auth_env, openid, channel):
    post_signed(message(channel.url, "hi", conversation_id="conv-1"), openid)

    address = services.get().addresses.get("conv-1")

    assert address is not None and address.service_url_trusted


def test_an_unsigned_message_is_a_401_and_nothing_is_stored_or_sent(auth_env, channel):
    response = MessagesFunction.main(http_request("POST", "http://localhost/api/messages",
                                                  message(channel.url, "hi", conversation_id="conv-x")))

    assert response.status_code == 401
    assert json.loads(response.get_body())["error"]["code"] == "unauthorized"
    assert services.get().addresses.get("conv-x") is None
    assert channel.requests == []


def test_a_token_for_another_service_url_is_a_401(auth_env, openid, channel):
    activity = message(channel.url, "hi", conversation_id="conv-y")
    token = openid.issue_channel_token(APP_ID, "https://elsewhere.example.test/")

    response = MessagesFunction.main(http_request("POST", "http://localhost/api/messages", activity,
                                                  headers={"Authorization": f"Bearer {token}"}))

    assert response.status_code == 401
    assert services.get().addresses.get("conv-y") is None
    assert channel.requests == []


def test_the_401_body_and_logs_never_hold_the_token(auth_env, openid, channel, caplog):
    activity = message(channel.url, "hi", conversation_id="conv-z")
    token = openid.issue_channel_token("another-app", channel.url)

    response = MessagesFunction.main(http_request("POST", "http://localhost/api/messages", activity,
                                                  headers={"Authorization": f"Bearer {token}"}))

    assert response.status_code == 401
    assert token not in response.get_body().decode()
    assert all(token not in record.getMessage() for record in caplog.records)


def test_ad_hoc_message_to_a_trusted_address_carries_a_valid_token(auth_env, openid, channel):
    post_signed(message(channel.url, "hi", conversation_id="conv-1"), openid)

    response = NotifyFunction.main(http_request("POST", "http://localhost/api/notify",
                                                {"text": "Hello, this is a notification", "to": {"conversation": "conv-1"}}))

    assert response.status_code == 200
    assert channel.texts("conv-1")[-1] == "Hello, this is a notification"


def test_the_token_never_goes_to_a_service_url_no_authenticated_activity_vouched_for(app_env, auth_env, channel, token_stub):
    # An address saved while auth was off (local mode) has an unverified serviceUrl.
    app_env.set(MicrosoftAppId="")
    MessagesFunction.main(http_request("POST", "http://localhost/api/messages", message(channel.url, conversation_id="conv-u")))
    sent_before = len(channel.requests)
    app_env.set(MicrosoftAppId=APP_ID)

    response = NotifyFunction.main(http_request("POST", "http://localhost/api/notify",
                                                {"text": "secret?", "to": {"conversation": "conv-u"}}))

    assert response.status_code == 400
    assert json.loads(response.get_body())["error"]["code"] == "untrusted_service_url"
    assert len(channel.requests) == sent_before
    assert token_stub.fetches == 0


def test_a_service_url_listed_as_trusted_gets_the_token(app_env, auth_env, channel):
    app_env.set(MicrosoftAppId="")
    MessagesFunction.main(http_request("POST", "http://localhost/api/messages", message(channel.url, conversation_id="conv-t")))
    app_env.set(MicrosoftAppId=APP_ID, TrustedServiceUrls=channel.url)

    response = NotifyFunction.main(http_request("POST", "http://localhost/api/notify",
                                                {"text": "trusted by setting", "to": {"conversation": "conv-t"}}))

    assert response.status_code == 200
    assert channel.texts("conv-t")[-1] == "trusted by setting"
