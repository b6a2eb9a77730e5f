"""Group chats and Teams channels in the address store: the conversation's address, apart from its people."""

from __future__ import annotations

import json
import uuid

import pytest
from azure.data.tables import TableServiceClient

from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference
from shared_code.storage.addresses import AddressStore, address_keys


def reference(conversation_id: str, user_id: str, *, kind: str = "channel") -> ConversationReference:
    return ConversationReference(
        channel_id="msteams", service_url="http://x",
        conversation=ConversationAccount(conversation_id, is_group=kind != "personal", conversation_type=kind),
        user=ChannelAccount(user_id), bot=ChannelAccount("28:bot"), locale="en-US", tenant_id="t1",
    )


@pytest.fixture
def table(storage_connection: str):
    return TableServiceClient.from_connection_string(storage_connection).get_table_client(f"grp{uuid.uuid4().hex[:12]}")


@pytest.fixture
def store(table) -> AddressStore:
    return AddressStore(table)


def test_group_address_keeps_its_first_user_when_someone_else_speaks(store):
    store.save(reference("19:g@thread.v2", "29:ada", kind="groupChat"), trusted=True)

    is_new = store.save(reference("19:g@thread.v2", "29:bob", kind="groupChat"), trusted=True)

    assert is_new is False
    assert store.get("19:g@thread.v2").reference.user.id == "29:ada"


def test_group_address_is_not_found_by_the_user_who_spoke_in_it(store):
    store.save(reference("19:g@thread.v2", "29:ada", kind="groupChat"), trusted=True)
    store.save(reference("a:ada", "29:ada", kind="personal"), trusted=True)

    assert [a.conversation_id for a in store.find_by_user("29:ada")] == ["a:ada"]


def test_group_row_saved_before_scopes_existed_is_not_a_persons_address(store, table):
    # As the previous version wrote it: UserId set, no Scope or TeamId column.
    group = reference("19:old@thread.tacv2", "29:ada")
    partition, row = address_keys("msteams", group.conversation.id)
    table.create_table()
    table.create_entity({"PartitionKey": partition, "RowKey": row, "ChannelId": "msteams",
                         "ConversationId": group.conversation.id, "UserId": "29:ada", "ServiceUrl": "http://x",
                         "Locale": "en-US", "Reference": json.dumps(group.to_json()), "Active": True,
                         "InactiveReason": "", "ServiceUrlTrusted": True})

    assert store.find_by_user("29:ada") == []
    assert store.get(group.conversation.id).scope == "channel"


def test_group_address_refresh_reactivates_it_and_keeps_its_team(store):
    store.save(reference("19:t@thread.tacv2", "29:ada"), trusted=True, team_id="19:t@thread.tacv2")
    store.deactivate("msteams", "19:t@thread.tacv2", "removed")

    store.save(reference("19:t@thread.tacv2", "29:bob"), trusted=True)

    saved = store.get("19:t@thread.tacv2")
    assert (saved.active, saved.team_id, saved.reference.user.id) == (True, "19:t@thread.tacv2", "29:ada")


def test_personal_address_takes_the_newest_user(store):
    store.save(reference("a:1", "29:ada", kind="personal"), trusted=True)

    store.save(reference("a:1", "29:ada2", kind="personal"), trusted=True)

    assert store.get("a:1").reference.user.id == "29:ada2"


def test_deactivate_team_marks_its_channels_and_threads_and_nothing_else(store):
    team = "19:team'o@thread.tacv2"  # a quote: the query is parameterized, never spliced
    for conversation_id in (team, f"{team};messageid=1", f"{team};messageid=2"):
        store.save(reference(conversation_id, "29:ada"), trusted=True, team_id=team)
    store.save(reference("19:other-channel@thread.tacv2;messageid=9", "29:ada"), trusted=True, team_id=team)
    store.save(reference("19:team'o@thread.tacv2x;messageid=1", "29:ada"), trusted=True, team_id="19:another")
    store.save(reference("a:ada", "29:ada", kind="personal"), trusted=True)

    marked = store.deactivate_team(team, team, "uninstalled")

    assert marked == 4
    active = {a.conversation_id for a in store.iter_active()}
    assert active == {"19:team'o@thread.tacv2x;messageid=1", "a:ada"}


def test_deactivate_team_finds_threads_saved_before_team_ids_were(store, table):
    team = "19:legacy@thread.tacv2"
    table.create_table()
    for conversation_id in (team, f"{team};messageid=7"):
        thread = reference(conversation_id, "29:ada")
        partition, row = address_keys("msteams", conversation_id)
        table.create_entity({"PartitionKey": partition, "RowKey": row, "ChannelId": "msteams",
                             "ConversationId": conversation_id, "UserId": "29:ada", "ServiceUrl": "http://x",
                             "Locale": "", "Reference": json.dumps(thread.to_json()), "Active": True,
                             "InactiveReason": "", "ServiceUrlTrusted": True})

    store.deactivate_team(team, team, "uninstalled")

    assert list(store.iter_active()) == []
    assert store.get(f"{team};messageid=7").inactive_reason == "uninstalled"


def test_find_by_users_reads_many_users_in_chunks_of_fifteen(store):
    store.save_many([reference(f"a:{i}", f"29:{i}", kind="personal") for i in range(40)], trusted=True)

    found = store.find_by_users([f"29:{i}" for i in range(0, 40, 2)] + ["29:nobody"])

    assert sorted(found) == sorted(f"29:{i}" for i in range(0, 40, 2))
    assert [a.conversation_id for a in found["29:4"]] == ["a:4"]
