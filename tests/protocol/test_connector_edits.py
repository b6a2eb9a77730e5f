"""The connector client's update and delete of activities the bot sent, against the connector stub."""

from __future__ import annotations

import pytest

from shared_code.plumbing.errors import Throttled
from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference, message_to
from shared_code.protocol.connector import ActivityNotFound, ConnectorClient, NoCredentials
from stubs.connector import ConnectorStub, Fault


def ref(stub: ConnectorStub, conversation_id: str = "a/b#c?d e") -> ConversationReference:
    return ConversationReference("test", stub.url + "/", ConversationAccount(conversation_id),
                                 ChannelAccount("u"), ChannelAccount("b"))


def client() -> ConnectorClient:
    return ConnectorClient(NoCredentials(), sleep=lambda s: None)


def test_update_activity_puts_the_new_content_in_place_at_the_percent_encoded_route(connector):
    reference = ref(connector)
    activity_id = client().send_to_conversation(reference, message_to(reference, "old"), trusted=True)

    client().update_activity(reference, activity_id, message_to(reference, "new"), trusted=True)

    assert connector.texts("a/b#c?d e") == ["new"]
    assert [(c, a, body["text"]) for c, a, body in connector.updated] == [("a/b#c?d e", activity_id, "new")]
    assert connector.requests[-1][1].startswith("/v3/conversations/a%2Fb%23c%3Fd%20e/activities/")


def test_delete_activity_removes_the_message(connector):
    reference = ref(connector, "conv")
    activity_id = client().send_to_conversation(reference, message_to(reference, "oops"), trusted=True)

    client().delete_activity(reference, activity_id, trusted=True)

    assert connector.texts("conv") == [] and connector.deleted == [("conv", activity_id)]


@pytest.mark.parametrize("operation", ["update", "delete"])
def test_an_unknown_activity_is_activity_not_found(connector, operation):
    reference = ref(connector, "conv")

    with pytest.raises(ActivityNotFound) as raised:
        if operation == "update":
            client().update_activity(reference, "never-sent", message_to(reference, "x"), trusted=True)
        else:
            client().delete_activity(reference, "never-sent", trusted=True)

    assert raised.value.code == "ActivityNotFoundInConversation" and raised.value.status == 404


def test_a_throttled_update_keeps_retry_after_and_changes_nothing(connector):
    reference = ref(connector, "conv")
    activity_id = client().send_to_conversation(reference, message_to(reference, "old"), trusted=True)
    connector.fail_next("conv", Fault(429, "Throttled", retry_after=3))

    with pytest.raises(Throttled) as raised:
        client().update_activity(reference, activity_id, message_to(reference, "new"), trusted=True)

    assert raised.value.retry_after == 3 and connector.texts("conv") == ["old"]
