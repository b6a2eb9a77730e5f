"""The authors' page in a real browser: Debian's Chromium driven by Playwright, against the dev host running
the app on Azurite and the connector stub (shared by the browser tests and `python -m devhost.screenshots`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import MessagesFunction
from devhost.chromium import chromium
from devhost.host import Host
from devhost.run import local_sign_in
from shared_code.app import services
from tests.support.builders import http_request, message

ROOT = Path(__file__).resolve().parents[2]
__all__ = ["ROOT", "chromium", "portal_host", "save_conversations"]


@contextmanager
def portal_host(*, signed_in: bool = True) -> Iterator[Host]:
    """The app on the dev host, App Service Authentication played for the local author (an Admin) unless
    `signed_in` is False (then the platform's setting is off too, as with `make run --auth`)."""
    sign_in = local_sign_in() if signed_in else None
    if not signed_in:
        os.environ.pop("WEBSITE_AUTH_ENABLED", None)
    services.reset()  # the app reads its settings again
    host = Host(ROOT, port=0, sign_in=sign_in).start()
    try:
        yield host
    finally:
        host.stop()
        os.environ.pop("WEBSITE_AUTH_ENABLED", None)


def save_conversations(service_url: str, count: int) -> list[str]:
    """`count` people who wrote to the bot, each in their chat."""
    ids = [f"conv-{n:03d}" for n in range(count)]
    for n, conversation_id in enumerate(ids):
        MessagesFunction.main(http_request("POST", "http://localhost/api/messages",
                                           message(service_url, "hi", conversation_id=conversation_id,
                                                   user_id=f"user-{n}")))
    return ids
