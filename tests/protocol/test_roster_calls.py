"""The connector client's roster calls against the stub: pagedmembers paging, creating a 1:1, their errors."""

from __future__ import annotations

import pytest

from shared_code.plumbing.errors import BadInput, RecipientGone, Throttled
from shared_code.protocol.connector import ConnectorClient, NoCredentials
from stubs.connector import Fault, create_fault_key, roster_fault_key


def client() -> ConnectorClient:
    return ConnectorClient(NoCredentials(), sleep=lambda s: None)


@pytest.mark.parametrize(("asked", "served"), [(1, 50), (50, 50), (120, 120), (500, 500), (5000, 500)])
def test_page_size_is_clamped_to_what_teams_serves(connector, asked, served):
    connector.add_team("19:t", 600)

    page = client().paged_members(connector.url, "19:t", asked, trusted=True)

    assert len(page.members) == served
    assert connector.requests[-1][1] == "/v3/conversations/19%3At/pagedmembers"


def test_continuation_tokens_walk_the_whole_roster_once(connector):
    ids = connector.add_team("19:t", 1200)
    seen, token, pages = [], None, 0
    while True:
        page = client().paged_members(connector.url, "19:t", 500, token, trusted=True)
        seen += [m.id for m in page.members]
        pages += 1
        token = page.continuation
        if token is None:
            break

    assert seen == ids and pages == 3


def test_members_carry_their_directory_fields(connector):
    connector.add_team("19:t", ["29:ada"], tenant_id="t9")

    [member] = client().paged_members(connector.url, "19:t", trusted=True).members

    assert (member.id, member.aad_object_id, member.tenant_id, member.user_principal_name) == (
        "29:ada", "aad-29:ada", "t9", "29:ada@example.com")


def test_roster_of_a_team_without_the_bot_is_recipient_gone(connector):
    connector.add_team("19:t", 3)
    connector.uninstall_team("19:t")

    with pytest.raises(RecipientGone) as raised:
        client().paged_members(connector.url, "19:t", trusted=True)
    assert raised.value.code == "BotNotInConversationRoster"


def test_roster_read_is_retried_after_a_throttle(connector):
    connector.add_team("19:t", 3)
    connector.fail_next(roster_fault_key("19:t"), Fault(429, retry_after=0))

    page = client().paged_members(connector.url, "19:t", trusted=True, retries=1)

    assert len(page.members) == 3 and connector.roster_pages_served == [3]


def test_personal_conversation_is_created_with_the_tenant(connector):
    connector.add_team("19:t", ["29:ada"], tenant_id="t1")

    conversation_id = client().create_personal_conversation(connector.url, "28:bot", "29:ada", "t1", trusted=True)

    [body] = connector.conversation_requests
    assert body == {"bot": {"id": "28:bot"}, "members": [{"id": "29:ada"}], "channelData": {"tenant": {"id": "t1"}},
                    "isGroup": False}
    assert conversation_id.startswith("a:") and connector.conversations_created == 1


def test_personal_conversation_asked_again_is_the_same_and_not_created_twice(connector):
    connector.add_team("19:t", ["29:ada"], tenant_id="t1")

    first = client().create_personal_conversation(connector.url, "28:bot", "29:ada", "t1", trusted=True)
    second = client().create_personal_conversation(connector.url, "28:bot", "29:ada", "t1", trusted=True)

    assert first == second and connector.conversations_created == 1


def test_personal_conversation_needs_a_tenant_id(connector):
    with pytest.raises(BadInput):
        client().create_personal_conversation(connector.url, "28:bot", "29:ada", "", trusted=True)
    assert connector.conversation_requests == []


def test_teams_refuses_a_conversation_without_a_tenant(connector):
    connector.add_team("19:t", ["29:ada"])

    with pytest.raises(BadInput):
        client().create_conversation(connector.url, {"bot": {"id": "28:bot"}, "members": [{"id": "29:ada"}]},
                                     trusted=True)


def test_personal_conversation_with_someone_outside_the_bots_teams_is_forbidden(connector):
    connector.add_team("19:t", ["29:ada"], tenant_id="t1")

    with pytest.raises(RecipientGone):
        client().create_personal_conversation(connector.url, "28:bot", "29:stranger", "t1", trusted=True)
    assert connector.conversations_created == 0


def test_throttled_creation_is_throttled_and_creates_nothing(connector):
    connector.add_team("19:t", ["29:ada"], tenant_id="t1")
    connector.fail_next(create_fault_key("29:ada"), Fault(429, retry_after=2))

    with pytest.raises(Throttled):
        client().create_personal_conversation(connector.url, "28:bot", "29:ada", "t1", trusted=True)
    assert connector.conversations_created == 0
