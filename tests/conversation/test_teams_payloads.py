"""Teams payloads replayed through MessagesFunction: the addresses saved and the replies sent, per scope."""

from __future__ import annotations

import MessagesFunction
from shared_code.app import services
from shared_code.conversation.main_dialog import ASK_NAME, INTERRUPT_NOTICE
from shared_code.conversation.turn import GREETING, GROUP_WELCOME
from tests.support.builders import http_request
from tests.support.teams import (
    ALEX,
    BOT_ID,
    GROUP_CHAT_ID,
    MEETING_ID,
    MEGAN,
    TEAM_ID,
    TENANT,
    THREAD_ID,
    payload,
)

PERSONAL_ID = payload("personal_message", "")["conversation"]["id"]


def post(name: str, connector, **changes):
    activity = payload(name, connector.url, **changes)
    response = MessagesFunction.main(http_request("POST", "http://localhost/api/messages", activity))
    # An invoke the bot has no handler for is answered 501 with a body (Teams shows no error for it).
    expected = 501 if activity["type"] == "invoke" else 200
    assert response.status_code == expected, response.get_body()
    return response


def address(conversation_id: str):
    return services.get().addresses.get(conversation_id, "msteams")


def test_personal_message_saves_the_users_address_and_greets_them(app_env, connector):
    post("personal_message", connector)

    saved = address(PERSONAL_ID)
    assert (saved.scope, saved.reference.user.id, saved.reference.bot.id, saved.reference.tenant_id) == (
        "personal", MEGAN, BOT_ID, TENANT)
    assert connector.texts(PERSONAL_ID) == [GREETING]


def test_channel_message_with_a_mention_is_read_without_the_mention(app_env, connector):
    post("channel_message_with_mention", connector, id="1481567600000", text="<at>Teams TestBot</at> hello")

    post("channel_message_with_mention", connector)

    texts = connector.texts(THREAD_ID)
    assert texts[:2] == [f"{GROUP_WELCOME} {ASK_NAME}", INTERRUPT_NOTICE]
    assert "/api/notify" in texts[2] and len(texts) == 3


def test_channel_message_saves_the_thread_as_a_channel_address_of_its_team(app_env, connector):
    post("channel_message_with_mention", connector)

    saved = address(THREAD_ID)
    assert (saved.scope, saved.team_id, saved.reference.user.id) == ("channel", TEAM_ID, MEGAN)
    assert services.get().addresses.find_by_user(MEGAN) == []  # a person is not reached through a channel


def test_thread_reply_is_answered_in_the_thread_and_the_name_has_no_mention(app_env, connector):
    post("channel_message_with_mention", connector, text="<at>Teams TestBot</at> hello")

    post("thread_reply", connector)

    texts = connector.texts(THREAD_ID)
    assert texts == [f"{GROUP_WELCOME} {ASK_NAME}", "Nice to meet you, Ada, says <at>Megan Bowen</at>! What's your favourite colour?"]
    assert connector.activities(THREAD_ID)[-1]["replyToId"] == "1481567708982"


def test_thread_reply_by_another_member_keeps_the_threads_saved_user(app_env, connector):
    post("channel_message_with_mention", connector)

    post("thread_reply", connector)

    assert address(THREAD_ID).reference.user.id == MEGAN


def test_group_chat_is_greeted_once_as_a_group(app_env, connector):
    post("group_chat_message", connector)
    post("group_chat_message", connector, id="1612345678902", text="<at>Teams TestBot</at> Ada")

    texts = connector.texts(GROUP_CHAT_ID)
    assert texts == [f"{GROUP_WELCOME} {ASK_NAME}", "Nice to meet you, Ada! What's your favourite colour?"]
    assert address(GROUP_CHAT_ID).scope == "groupChat"


def test_meeting_join_of_another_member_keeps_the_saved_user_and_says_nothing(app_env, connector):
    post("meeting_message", connector)
    before = connector.texts(MEETING_ID)

    post("meeting_join", connector)

    assert address(MEETING_ID).reference.user.id == MEGAN
    assert connector.texts(MEETING_ID) == before == [f"{GROUP_WELCOME} {ASK_NAME}"]


def test_meeting_join_in_a_meeting_the_bot_never_saw_saves_it_and_greets_nobody(app_env, connector):
    post("meeting_join", connector)

    saved = address(MEETING_ID)
    assert saved is not None and saved.scope == "groupChat"
    assert saved.reference.user.id != ALEX
    assert connector.all_activities() == {}


def test_bot_added_to_a_team_saves_the_team(app_env, connector):
    post("bot_added_to_team", connector)

    team = services.get().teams.get(TEAM_ID)
    assert (team.name, team.aad_group_id, team.tenant_id, team.service_url, team.installed) == (
        "Sales", "02ce3874-dd86-41ba-bddc-013f34019978", TENANT, connector.url, True)
    assert (team.root.conversation.id, team.root.bot.id, team.root.channel_id) == (TEAM_ID, BOT_ID, "msteams")


def test_bot_added_to_a_team_greets_its_channel_once(app_env, connector):
    post("bot_added_to_team", connector)
    post("installation_add", connector)

    assert connector.texts(TEAM_ID) == [GROUP_WELCOME]
    assert address(TEAM_ID).team_id == TEAM_ID


def test_installation_add_before_the_conversation_update_greets_once_too(app_env, connector):
    post("installation_add", connector)
    post("bot_added_to_team", connector)

    assert connector.texts(TEAM_ID) == [GROUP_WELCOME]
    assert services.get().teams.get(TEAM_ID).installed


def test_team_renamed_updates_the_teams_name(app_env, connector):
    post("bot_added_to_team", connector)

    post("team_renamed", connector)

    assert services.get().teams.get(TEAM_ID).name == "Sales EMEA"
    assert connector.texts(TEAM_ID) == [GROUP_WELCOME]


def test_team_renamed_for_a_team_installed_before_teams_were_saved_saves_it(app_env, connector):
    post("team_renamed", connector)

    team = services.get().teams.get(TEAM_ID)
    assert (team.name, team.installed) == ("Sales EMEA", True)


def test_installation_add_upgrade_keeps_the_team_and_says_nothing_again(app_env, connector):
    post("bot_added_to_team", connector)

    post("installation_add_upgrade", connector)

    assert services.get().teams.get(TEAM_ID).installed
    assert connector.texts(TEAM_ID) == [GROUP_WELCOME]


def test_installation_remove_marks_the_team_uninstalled(app_env, connector):
    post("bot_added_to_team", connector)

    post("installation_remove", connector)

    assert services.get().teams.get(TEAM_ID).installed is False


def test_installation_remove_marks_every_thread_address_of_the_team_inactive(app_env, connector):
    post("bot_added_to_team", connector)
    post("channel_message_with_mention", connector)
    post("channel_message_with_mention", connector, id="1481567609999",
         conversation={"isGroup": True, "conversationType": "channel", "tenantId": TENANT,
                       "id": f"{TEAM_ID};messageid=1481567609999"})
    post("personal_message", connector)

    post("installation_remove", connector)

    for conversation_id in (TEAM_ID, THREAD_ID, f"{TEAM_ID};messageid=1481567609999"):
        assert not address(conversation_id).active, conversation_id
    assert address(PERSONAL_ID).active  # a member's own chat is not the team's


def test_bot_removed_from_the_team_members_marks_the_team_and_its_threads_inactive(app_env, connector):
    post("bot_added_to_team", connector)
    post("channel_message_with_mention", connector)

    post("bot_removed_from_team", connector)

    assert services.get().teams.get(TEAM_ID).installed is False
    assert not address(THREAD_ID).active and not address(TEAM_ID).active


def test_message_reaction_from_a_new_user_saves_their_address(app_env, connector):
    activity = payload("message_reaction", connector.url)

    post("message_reaction", connector)

    saved = address(activity["conversation"]["id"])
    assert (saved.scope, saved.reference.user.id, saved.active) == ("personal", ALEX, True)
    assert connector.all_activities() == {}


def test_invoke_from_a_new_user_saves_their_address(app_env, connector):
    activity = payload("invoke_card_action", connector.url)

    post("invoke_card_action", connector)

    saved = address(activity["conversation"]["id"])
    assert saved.reference.user.id == activity["from"]["id"]
    assert saved.reference.tenant_id == TENANT


def test_message_reaction_refreshes_an_inactive_address(app_env, connector):
    activity = payload("message_reaction", connector.url)
    post("message_reaction", connector)
    services.get().addresses.deactivate("msteams", activity["conversation"]["id"], "blocked")

    post("message_reaction", connector, id="1:another")

    assert address(activity["conversation"]["id"]).active
