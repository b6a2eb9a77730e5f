"""Teams fields of an activity: scope, team, event type, and the bot's mention taken out of the text."""

from __future__ import annotations

import pytest

from shared_code.protocol.activity import (
    Activity,
    ConversationAccount,
    event_type,
    scope_of,
    strip_recipient_mention,
    team_of,
)
from tests.support.teams import TEAM_ID, payload


def activity(name: str, **changes) -> Activity:
    return Activity.from_json(payload(name, "http://svc", **changes))


@pytest.mark.parametrize(("conversation", "scope"), [
    (ConversationAccount("a", conversation_type="personal"), "personal"),
    (ConversationAccount("a", is_group=True, conversation_type="groupChat"), "groupChat"),
    (ConversationAccount("a", is_group=True, conversation_type="channel"), "channel"),
    (ConversationAccount("a", is_group=True), "groupChat"),  # another channel's group conversation
    (ConversationAccount("a"), "personal"),
])
def test_scope_comes_from_the_conversation_type_else_is_group(conversation, scope):
    assert scope_of(conversation) == scope


def test_mention_of_the_bot_is_stripped_and_the_rest_kept():
    assert strip_recipient_mention(activity("channel_message_with_mention")) == "survey"


def test_mentions_of_other_people_stay_in_the_text():
    assert strip_recipient_mention(activity("thread_reply")) == "Ada, says <at>Megan Bowen</at>"


def test_mention_is_stripped_whatever_its_case():
    assert strip_recipient_mention(activity("group_chat_message", text="<AT>teams testbot</AT> Hi")) == "Hi"


def test_mention_without_its_text_is_found_by_the_bots_name():
    message = payload("group_chat_message", "http://svc")
    message["entities"][0].pop("text")

    assert strip_recipient_mention(Activity.from_json(message)) == "hi there"


def test_text_without_a_mention_entity_is_left_as_it_is():
    assert strip_recipient_mention(activity("personal_message", text=" <at>Teams TestBot</at> x ")) == "<at>Teams TestBot</at> x"


def test_team_comes_from_channel_data():
    team = team_of(activity("bot_added_to_team"))

    assert (team.id, team.name, team.aad_group_id) == (TEAM_ID, "Sales", "02ce3874-dd86-41ba-bddc-013f34019978")


def test_group_chat_has_no_team_and_renaming_has_its_event_type():
    assert team_of(activity("group_chat_message")) is None
    assert event_type(activity("team_renamed")) == "teamRenamed"
