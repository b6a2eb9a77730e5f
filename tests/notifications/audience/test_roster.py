"""Roster building blocks: a saved team's roster read page by page, members' personal addresses created once."""

from __future__ import annotations

import pytest

import MessagesFunction
from shared_code.app import services
from shared_code.notifications.audience import roster
from shared_code.plumbing.errors import NotFound, RecipientGone
from shared_code.protocol.connector import RosterMember
from tests.support.builders import http_request
from tests.support.teams import MEGAN, TEAM_ID, TENANT, payload


def post(name: str, connector, **changes) -> None:
    response = MessagesFunction.main(
        http_request("POST", "http://localhost/api/messages", payload(name, connector.url, **changes)))
    assert response.status_code == 200


@pytest.fixture
def team(app_env, connector):
    """The bot installed in a team of 1,200 (Megan among them), as Teams tells it."""
    post("bot_added_to_team", connector)
    connector.add_team(TEAM_ID, [f"29:member-{i}" for i in range(1199)] + [MEGAN], tenant_id=TENANT)
    return services.get().teams.get(TEAM_ID)


def whole_roster(page_size: int = 500) -> tuple[list[str], int]:
    members, token, pages = [], None, 0
    while True:
        page = roster.read_page(TEAM_ID, services.get(), continuation=token, page_size=page_size)
        members += [m.id for m in page.members]
        pages += 1
        if page.continuation is None:
            return members, pages
        token = page.continuation


def test_roster_of_a_1200_member_team_is_read_in_more_than_one_page_each_member_once(team, connector):
    members, pages = whole_roster()

    assert len(members) == len(set(members)) == 1200
    assert pages == 3 and connector.roster_pages_served == [500, 500, 200]


def test_member_who_left_is_not_in_the_next_reading(team, connector):
    connector.remove_member(TEAM_ID, MEGAN)

    members, _ = whole_roster()

    assert MEGAN not in members and len(members) == 1199


def test_personal_address_creates_the_conversation_with_the_tenant_once_and_saves_it(team, connector):
    member = RosterMember("29:member-7", "Member 7")

    created = roster.personal_address(member, team, services.get())

    [request] = connector.conversation_requests
    assert request["channelData"] == {"tenant": {"id": TENANT}} and request["members"] == [{"id": "29:member-7"}]
    assert request["bot"]["id"] == team.root.bot.id
    saved = services.get().addresses.get(created.conversation_id, "msteams")
    assert (saved.scope, saved.reference.user.id, saved.reference.service_url) == ("personal", "29:member-7", connector.url)


def test_personal_address_is_reused_the_second_time(team, connector):
    member = RosterMember("29:member-7")

    first = roster.personal_address(member, team, services.get())
    second = roster.personal_address(member, team, services.get())

    assert first.conversation_id == second.conversation_id
    assert connector.conversations_created == 1 and len(connector.conversation_requests) == 1


def test_member_who_wrote_to_the_bot_is_reached_in_their_own_chat(team, connector):
    post("personal_message", connector)

    address = roster.personal_address(RosterMember(MEGAN), team, services.get())

    assert address.conversation_id == payload("personal_message", "")["conversation"]["id"]
    assert connector.conversation_requests == []


def test_saved_personal_addresses_of_a_page_are_found_together(team, connector):
    post("personal_message", connector)
    page = roster.read_page(TEAM_ID, services.get(), page_size=500)
    last = roster.read_page(TEAM_ID, services.get(), continuation=roster.read_page(
        TEAM_ID, services.get(), continuation=page.continuation).continuation)

    found = roster.saved_personal_addresses(page.members + last.members, team, services.get())

    assert list(found) == [MEGAN]


def test_member_who_blocked_the_bot_is_given_the_inactive_address_not_a_new_one(team, connector):
    post("personal_message", connector)
    conversation_id = payload("personal_message", "")["conversation"]["id"]
    services.get().addresses.deactivate("msteams", conversation_id, "ConversationBlockedByUser")

    address = roster.personal_address(RosterMember(MEGAN), team, services.get())

    assert (address.conversation_id, address.active) == (conversation_id, False)
    assert connector.conversation_requests == []


def test_roster_of_an_uninstalled_team_is_gone_without_asking_teams(team, connector):
    post("installation_remove", connector)

    with pytest.raises(RecipientGone):
        roster.read_page(TEAM_ID, services.get())
    assert connector.roster_pages_served == []


def test_roster_of_an_unknown_team_is_not_found(app_env, connector):
    with pytest.raises(NotFound):
        roster.read_page("19:unknown@thread.tacv2", services.get())
