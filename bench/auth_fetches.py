"""How often the app goes to the login services: JWKS fetches per 1,000 inbound turns (target 1)."""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor

import azure.functions as func

from bench.common import Figure, app_settings, storage
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
        from shared_code import services

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
    return Figure(f"JWKS fetches for {turns} signed inbound turns ({workers} at a time); token fetches for their replies",
                  f"{fetches} JWKS, {tokens} token", "", "", "1 and 1", fetches == 1 and tokens == 1)


if __name__ == "__main__":
    print(jwks_fetches_per_thousand_turns())
