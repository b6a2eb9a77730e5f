"""The connector client against the connector stub: routes, encoding, error mapping, retries."""

from __future__ import annotations

import pytest

from shared_code.plumbing.errors import AppRejected, BadInput, RecipientGone, Throttled, Upstream
from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference, message_to
from shared_code.protocol.connector import ConnectorClient, NoCredentials
from stubs.connector import ConnectorStub, Fault


def ref(stub: ConnectorStub, conversation_id: str = "a/b#c?d e") -> ConversationReference:
    return ConversationReference("test", stub.url + "/", ConversationAccount(conversation_id),
                                 ChannelAccount("u"), ChannelAccount("b"))


def client(sleeps: list[float] | None = None) -> ConnectorClient:
    return ConnectorClient(NoCredentials(), sleep=(sleeps.append if sleeps is not None else lambda s: None))


def test_send_percent_encodes_the_conversation_id_and_returns_the_activity_id(connector):
    reference = ref(connector)

    activity_id = client().send_to_conversation(reference, message_to(reference, "hi"), trusted=True)

    [stored] = connector.activities("a/b#c?d e")
    assert stored["id"] == activity_id and stored["text"] == "hi"
    assert connector.requests[-1][1] == "/v3/conversations/a%2Fb%23c%3Fd%20e/activities"


def test_reply_posts_to_the_activity_route_with_reply_to_id(connector):
    reference = ref(connector, "conv")

    client().reply_to_activity(reference, "act/1", message_to(reference, "re"), trusted=True)

    assert connector.activities("conv")[0]["replyToId"] == "act/1"
    assert connector.requests[-1][1] == "/v3/conversations/conv/activities/act%2F1"


def test_create_conversation_returns_the_new_id(connector):
    created = client().create_conversation(connector.url, {"bot": {"id": "b"}, "members": [{"id": "u"}],
                                                           "activity": {"type": "message", "text": "hi"}}, trusted=True)

    assert created["id"].startswith("conv-")
    assert connector.texts(created["id"]) == ["hi"]


@pytest.mark.parametrize(
    ("fault", "error_type", "code"),
    [
        (Fault(429, retry_after=3), Throttled, "throttled"),
        (Fault(503), Throttled, "throttled"),
        (Fault(403, "ConversationBlockedByUser"), RecipientGone, "ConversationBlockedByUser"),
        (Fault(403, "BotNotInConversationRoster"), RecipientGone, "BotNotInConversationRoster"),
        (Fault(403, "Forbidden", sub_code="MessageWritesBlocked"), RecipientGone, "MessageWritesBlocked"),
        (Fault(404, "ConversationNotFound"), RecipientGone, "ConversationNotFound"),
        (Fault(403, "BotDisabledByAdmin"), AppRejected, "BotDisabledByAdmin"),
        (Fault(413, "MessageSizeTooBig"), BadInput, "MessageSizeTooBig"),
        (Fault(400, "BadArgument"), BadInput, "BadArgument"),
        (Fault(502), Upstream, "BadGateway"),
        (Fault(500), Upstream, "InternalServerError"),
    ],
)
def test_connector_errors_map_to_app_errors(connector, fault, error_type, code):
    reference = ref(connector, "conv")
    connector.fail_next("conv", fault)

    with pytest.raises(error_type) as raised:
        client().send_to_conversation(reference, message_to(reference, "x"), trusted=True)

    assert raised.value.code == code
    assert raised.value.operation_id  # the connector's correlation id is kept for the logs


def test_throttled_keeps_retry_after(connector):
    reference = ref(connector, "conv")
    connector.fail_next("conv", Fault(429, retry_after=7))

    with pytest.raises(Throttled) as raised:
        client().send_to_conversation(reference, message_to(reference, "x"), trusted=True)

    assert raised.value.retry_after == 7


def test_retries_429_then_succeeds_waiting_retry_after(connector):
    reference = ref(connector, "conv")
    connector.fail_next("conv", Fault(429, retry_after=2), times=2)
    sleeps: list[float] = []

    client(sleeps).send_to_conversation(reference, message_to(reference, "x"), trusted=True, retries=2)

    assert sleeps == [2, 2]
    assert connector.texts("conv") == ["x"]
    assert connector.attempts("conv") == 3


def test_does_not_retry_a_500(connector):
    reference = ref(connector, "conv")
    connector.fail_next("conv", Fault(500))

    with pytest.raises(Upstream) as raised:
        client().send_to_conversation(reference, message_to(reference, "x"), trusted=True, retries=3)

    assert raised.value.transient is False
    assert connector.attempts("conv") == 1


def test_unreachable_channel_is_a_transient_upstream_error():
    reference = ConversationReference("test", "http://127.0.0.1:9", ConversationAccount("c"), ChannelAccount("u"), ChannelAccount("b"))

    with pytest.raises(Upstream) as raised:
        client().send_to_conversation(reference, message_to(reference, "x"), trusted=True)

    assert raised.value.transient and raised.value.code == "unreachable"


def test_local_mode_sends_no_authorization_header(connector):
    reference = ref(connector, "conv")

    client().send_to_conversation(reference, message_to(reference, "x"), trusted=True)

    assert connector.authorization_headers_seen == 0
