"""Figure 3, how often the app goes to the login services: JWKS fetches per 1,000 inbound turns
and bot tokens fetched per broadcast (target 1 each)."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import azure.functions as func

from bench.common import Figure, app_settings, run_broadcast, storage
from stubs.connector import ConnectorStub
from stubs.openid import OpenIdStub
from stubs.token import TokenStub

APP_ID, APP_PASSWORD = "bench-app", "bench-secret"


def _activity(service_url: str, conversation: str) -> dict:
    return {"type": "message", "id": uuid.uuid4().hex, "channelId": "test", "serviceUrl": service_url,
            "conversation": {"id": conversation}, "from": {"id": "u"}, "recipient": {"id": "bot"}, "text": "hi"}


def jwks_fetches_per_thousand_turns(turns: int = 1000, workers: int = 8) -> Figure:
    import json

    with storage() as connection, OpenIdStub(APP_ID) as openid, TokenStub(APP_ID, APP_PASSWORD) as login, \
            ConnectorStub(token_check=login.is_valid) as connector:
        os.environ.update(app_settings(connection, **openid.settings_env(APP_ID), MicrosoftAppPassword=APP_PASSWORD,
                                       ToChannelFromBotLoginUrl=login.login_url()))
        from shared_code.app import services

        services.reset()
        import MessagesFunction

        def turn(i: int) -> int:
            activity = _activity(connector.url, f"conv-{i % 50}")
            request = func.HttpRequest("POST", "http://localhost/api/messages", body=json.dumps(activity).encode(),
                                       headers={"Authorization": openid.sign_activity(activity)})
            return MessagesFunction.main(request).status_code

        with ThreadPoolExecutor(workers) as pool:
            statuses = list(pool.map(turn, range(turns)))
        services.reset()
        if statuses.count(200) != turns or connector.total_delivered() != turns:
            raise RuntimeError(f"only {statuses.count(200)} of {turns} turns succeeded")
        fetches, tokens = openid.jwks_fetches, login.fetches
    return Figure(f"3. JWKS fetches for {turns} signed inbound turns ({workers} at a time); token fetches for their replies",
                  f"{fetches} JWKS, {tokens} token", "", "", "1 and 1", fetches == 1 and tokens == 1)


def token_fetches_per_broadcast(recipients: int = 1000) -> Figure:
    """App id set: every send needs the bot's token, and the whole broadcast should fetch it once."""
    from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference

    with storage() as connection, TokenStub(APP_ID, APP_PASSWORD) as login, \
            ConnectorStub(token_check=login.is_valid) as connector:
        os.environ.update(app_settings(connection, MicrosoftAppId=APP_ID, MicrosoftAppPassword=APP_PASSWORD,
                                       ToChannelFromBotLoginUrl=login.login_url(), SendConcurrency="32",
                                       SendRatePerSecond="1000", TenantSendRatePerSecond="1000"))
        from shared_code.app import services

        services.reset()
        app = services.get()
        # trusted=True: as if each address came from an authenticated turn, so the token may go to its serviceUrl.
        app.addresses.save_many([ConversationReference("test", connector.url, ConversationAccount(f"tok-{i:05d}"),
                                                       ChannelAccount(f"u-{i}"), ChannelAccount("bot"))
                                 for i in range(recipients)], trusted=True)
        status = run_broadcast(app)
        services.reset()
        delivered, fetches = connector.total_delivered(), login.fetches
    if status["sent"] != recipients or delivered != recipients:
        raise RuntimeError(f"broadcast sent {status['sent']}, stub stored {delivered}, expected {recipients}")
    return Figure(f"3. bot tokens fetched for one broadcast to {recipients:,} (app id set, TokenStub; the "
                  "connector stub accepts only its tokens), scan and page jobs off the queue in one process",
                  f"{fetches} token", "", "", "1", fetches == 1)


def measure() -> list[Figure]:
    return [token_fetches_per_broadcast(), jwks_fetches_per_thousand_turns()]


if __name__ == "__main__":
    for figure in measure():
        print(figure)
