"""The composition root provides what the lower packages say they need (`conversation.ports`, `notifications.ports`)."""

from __future__ import annotations

import pytest

from shared_code.app import services
from shared_code.conversation.ports import ConversationServices
from shared_code.notifications.ports import NotificationServices


def members_of(protocol: type) -> set[str]:
    """What a Protocol asks for: its properties, methods and annotated attributes, its bases' included."""
    names: set[str] = set()
    for cls in protocol.__mro__:
        if cls is object or not getattr(cls, "_is_protocol", False) or cls.__module__ == "typing":
            continue
        names |= {n for n in vars(cls) if not n.startswith("_")} | set(getattr(cls, "__annotations__", {}))
    return names


def test_the_ports_ask_for_something():
    assert {"settings", "connector", "queue"} <= members_of(ConversationServices)
    assert {"settings", "ledger", "notifications", "clock"} <= members_of(NotificationServices)


@pytest.mark.parametrize("port", [ConversationServices, NotificationServices])
def test_the_app_services_provide_every_member_a_port_names(app_env, port):
    app = services.get()
    missing = sorted(name for name in members_of(port) if not hasattr(app, name))
    assert missing == []
