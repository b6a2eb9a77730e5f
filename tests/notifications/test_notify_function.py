"""NotifyFunction: an ad hoc proactive message to one saved conversation."""

from __future__ import annotations

import json

import pytest
from botbuilder.schema import Activity as SdkActivity

import MessagesFunction
import NotifyFunction
from shared_code.app import services
from stubs.connector import Fault
from tests.support.builders import conversation_update, http_request, message


def notify(body: object = None, **kwargs: object):
    return NotifyFunction.main(http_request("POST", "http://localhost/api/notify", body, **kwargs))


def meet(connector, conversation_id: str, locale: str = "en-US") -> None:
    MessagesFunction.main(http_request("POST", "http://localhost/api/messages",
                                       message(connector.url, "hi", conversation_id=conversation_id, locale=locale)))


def test_ad_hoc_message_reaches_the_saved_conversation_with_text_and_locale(app_env, connector):
    meet(connector, "conv-1")

    response = notify({"text": "Hello, this is a notification", "locale": "en-US", "to": {"conversation": "conv-1"}})

    assert response.status_code == 200
    sent = connector.activities("conv-1")[-1]
    assert json.loads(response.get_body()) == {"id": sent["id"], "conversation": "conv-1"}
    assert sent["text"] == "Hello, this is a notification"
    assert sent["locale"] == "en-US"
    assert "replyToId" not in sent
    assert sent["from"]["id"] == "bot-1" and sent["recipient"]["id"] == "user-1"


def test_ad_hoc_message_is_a_valid_bot_framework_activity(app_env, connector):
    meet(connector, "conv-1")
    notify({"text": "Hello, this is a notification", "locale": "en-GB", "to": {"conversation": "conv-1"}})
    sent = connector.activities("conv-1")[-1]

    parsed = SdkActivity().deserialize(sent)

    assert parsed.type == "message"
    assert parsed.text == "Hello, this is a notification"
    assert parsed.locale == "en-GB"
    assert parsed.from_property.id == "bot-1"
    assert parsed.recipient.id == "user-1"
    assert parsed.conversation.id == "conv-1"
    assert parsed.channel_id == "test"
    assert parsed.service_url == connector.url
    # Nothing the SDK model knows is read differently from what we sent.
    assert {key: sent[key] for key in parsed.serialize()} == parsed.serialize()


def test_locale_defaults_to_the_users_saved_locale(app_env, connector):
    meet(connector, "conv-fr", locale="fr-FR")

    notify({"text": "Bonjour", "to": {"conversation": "conv-fr"}})

    assert connector.activities("conv-fr")[-1]["locale"] == "fr-FR"


def test_sending_to_a_removed_bots_conversation_is_refused_and_nothing_is_sent(app_env, connector):
    meet(connector, "conv-gone")
    MessagesFunction.main(http_request("POST", "http://localhost/api/messages",
                                       conversation_update(connector.url, "conv-gone", removed=["bot-1"])))
    before = len(connector.activities("conv-gone"))

    response = notify({"text": "anyone there?", "to": {"conversation": "conv-gone"}})

    assert response.status_code == 410
    assert json.loads(response.get_body())["error"]["code"] == "address_inactive"
    assert len(connector.activities("conv-gone")) == before


def test_connector_403_marks_the_address_inactive_and_answers_410(app_env, connector):
    meet(connector, "conv-blocked")
    connector.fail_next("conv-blocked", Fault(403, "ConversationBlockedByUser"))

    response = notify({"text": "hello?", "to": {"conversation": "conv-blocked"}})

    assert response.status_code == 410
    assert json.loads(response.get_body())["error"]["code"] == "ConversationBlockedByUser"
    address = services.get().addresses.get("conv-blocked")
    assert address is not None and not address.active and address.inactive_reason == "ConversationBlockedByUser"


def test_connector_429_is_retried_after_retry_after(app_env, connector):
    meet(connector, "conv-busy")
    connector.fail_next("conv-busy", Fault(429, retry_after=0))

    response = notify({"text": "eventually", "to": {"conversation": "conv-busy"}})

    assert response.status_code == 200
    assert connector.texts("conv-busy")[-1] == "eventually"


def test_persistent_429_is_passed_on_with_retry_after(app_env, connector):
    meet(connector, "conv-busy")
    connector.fail_next("conv-busy", Fault(429, retry_after=120), times=5)

    response = notify({"text": "later", "to": {"conversation": "conv-busy"}})

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "120"
    assert "later" not in connector.texts("conv-busy")


def test_unknown_conversation_is_a_404(app_env, connector):
    response = notify({"text": "hi", "to": {"conversation": "nobody"}})

    assert response.status_code == 404
    assert json.loads(response.get_body())["error"]["code"] == "not_found"
    assert connector.all_activities() == {}


BAD_REQUESTS = {
    "not json": b"{nope",
    "a json array": b"[]",
    "missing text": {"to": {"conversation": "conv-1"}},
    "empty text": {"text": "  ", "to": {"conversation": "conv-1"}},
    "text not a string": {"text": 5, "to": {"conversation": "conv-1"}},
    "missing to": {"text": "hi"},
    "to without conversation": {"text": "hi", "to": {}},
    "locale not a string": {"text": "hi", "locale": 1, "to": {"conversation": "conv-1"}},
}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_bad_notify_request_is_a_400_and_sends_nothing(app_env, connector, name):
    meet(connector, "conv-1")
    before = connector.total_delivered()
    body = BAD_REQUESTS[name]

    response = notify(None, raw=body) if isinstance(body, bytes) else notify(body)

    assert response.status_code == 400
    assert json.loads(response.get_body())["error"]["message"]
    assert connector.total_delivered() == before


def test_notify_body_over_the_limit_is_a_413(app_env, connector):
    meet(connector, "conv-1")
    app_env.set(MaxRequestBytes="512")

    response = notify({"text": "x" * 600, "to": {"conversation": "conv-1"}})

    assert response.status_code == 413
    assert connector.texts("conv-1")[-1] != "x" * 600
