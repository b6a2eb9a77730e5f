"""The team store on real Table Storage: save, rename, uninstall, list."""

from __future__ import annotations

import uuid

import pytest
from azure.data.tables import TableServiceClient

from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference
from shared_code.storage.teams import Team, TeamStore


def team(team_id: str = "19:t@thread.tacv2", name: str = "Sales", **changes) -> Team:
    root = ConversationReference("msteams", "http://svc", ConversationAccount(team_id, is_group=True,
                                 conversation_type="channel", tenant_id="t1"),
                                 ChannelAccount("29:ada"), ChannelAccount("28:bot", "Bot"), tenant_id="t1")
    return Team(**{"id": team_id, "name": name, "aad_group_id": "aad-1", "tenant_id": "t1", "root": root, **changes})


@pytest.fixture
def store(storage_connection: str) -> TeamStore:
    return TeamStore(TableServiceClient.from_connection_string(storage_connection)
                     .get_table_client(f"teams{uuid.uuid4().hex[:12]}"))


def test_saved_team_reads_back_whole(store):
    saved = team(service_url_trusted=True)
    store.save(saved)

    read = store.get(saved.id)

    assert (read.id, read.name, read.aad_group_id, read.tenant_id, read.root, read.installed, read.service_url_trusted) == (
        saved.id, "Sales", "aad-1", "t1", saved.root, True, True)
    assert read.service_url == "http://svc"


def test_unknown_team_is_none_even_before_the_table_exists(store):
    assert store.get("19:nope") is None
    assert store.list() == []


def test_rename_changes_only_the_name(store):
    store.save(team())

    assert store.rename("19:t@thread.tacv2", "Sales EMEA") is True

    assert (store.get("19:t@thread.tacv2").name, store.get("19:t@thread.tacv2").aad_group_id) == ("Sales EMEA", "aad-1")


def test_rename_of_an_unknown_team_saves_nothing(store):
    store.save(team("19:other"))

    assert store.rename("19:t@thread.tacv2", "X") is False
    assert store.get("19:t@thread.tacv2") is None


def test_an_install_without_a_name_keeps_the_known_name(store):
    store.save(team())

    store.save(team(name="", aad_group_id=""))

    assert (store.get("19:t@thread.tacv2").name, store.get("19:t@thread.tacv2").aad_group_id) == ("Sales", "aad-1")


def test_uninstalled_team_is_kept_and_reinstalling_it_installs_it_again(store):
    store.save(team())

    store.mark_uninstalled("19:t@thread.tacv2")
    uninstalled = store.get("19:t@thread.tacv2").installed
    store.save(team())

    assert (uninstalled, store.get("19:t@thread.tacv2").installed) == (False, True)


def test_list_gives_every_team_by_name(store):
    for team_id, name in (("19:b", "beta"), ("19:a", "Alpha"), ("19:c", "gamma")):
        store.save(team(team_id, name))
    store.mark_uninstalled("19:c")

    assert [(t.id, t.name, t.installed) for t in store.list()] == [
        ("19:a", "Alpha", True), ("19:b", "beta", True), ("19:c", "gamma", False)]
