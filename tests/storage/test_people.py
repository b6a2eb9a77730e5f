"""The people index: personal chats by Entra object id, a tenant's serviceUrl, installs the app made."""

from __future__ import annotations

from shared_code.app import services
from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference
from shared_code.storage.people import PersonalChat

TENANT = "tenant-1"


def reference(conversation_id: str, aad: str, *, conversation_type: str = "personal") -> ConversationReference:
    return ConversationReference(
        channel_id="msteams", service_url="https://smba.example/teams/",
        conversation=ConversationAccount(conversation_id, conversation_type=conversation_type, tenant_id=TENANT,
                                         is_group=conversation_type != "personal"),
        user=ChannelAccount(f"29:{aad}", "P", aad_object_id=aad), bot=ChannelAccount("28:bot"), tenant_id=TENANT)


def test_a_new_personal_address_is_found_by_its_persons_object_id(app_env):
    app = services.get()
    app.addresses.save(reference("a:1", "AAAA0000-0000-0000-0000-000000000001"), trusted=True)

    found = app.people.find(TENANT, ["aaaa0000-0000-0000-0000-000000000001", "aaaa0000-0000-0000-0000-000000000002"])

    assert found == {"aaaa0000-0000-0000-0000-000000000001": PersonalChat("msteams", "a:1")}


def test_a_group_chat_is_not_anyones_personal_chat(app_env):
    app = services.get()
    app.addresses.save(reference("19:group", "aaaa0000-0000-0000-0000-000000000003", conversation_type="groupChat"),
                       trusted=True)

    assert app.people.find(TENANT, ["aaaa0000-0000-0000-0000-000000000003"]) == {}


def test_the_tenants_service_url_is_the_one_an_authenticated_activity_brought(app_env):
    app = services.get()
    app.addresses.save(reference("a:untrusted", "aaaa0000-0000-0000-0000-000000000004"), trusted=False)
    assert app.people.service_url(TENANT) is None

    app.addresses.save(reference("a:trusted", "aaaa0000-0000-0000-0000-000000000005"), trusted=True)

    assert app.people.service_url(TENANT) == "https://smba.example/teams/"


def test_more_than_fifteen_people_are_found_in_several_queries(app_env):
    app = services.get()
    ids = [f"aaaa0000-0000-0000-0000-{i:012d}" for i in range(40)]
    for i, aad in enumerate(ids):
        app.people.save(TENANT, aad, PersonalChat("msteams", f"a:{i}"))

    assert len(app.people.find(TENANT, ids)) == 40


def test_an_install_the_app_made_is_known_and_is_no_personal_chat_yet(app_env):
    app = services.get()
    app.people.note_install(TENANT, "aaaa0000-0000-0000-0000-000000000006")

    assert app.addresses.installed_by_the_app(reference("19:x", "aaaa0000-0000-0000-0000-000000000006"))
    assert not app.addresses.installed_by_the_app(reference("19:y", "aaaa0000-0000-0000-0000-000000000007"))
    assert app.people.find(TENANT, ["aaaa0000-0000-0000-0000-000000000006"]) == {}


def test_personal_chats_saved_before_the_index_existed_are_indexed_on_demand(app_env):
    from shared_code.storage.addresses import AddressStore

    app = services.get()
    unindexed = AddressStore(app.addresses._table)  # noqa: SLF001 - the store as it was before the People table
    unindexed.save(reference("a:old", "aaaa0000-0000-0000-0000-000000000008"), trusted=True)
    unindexed.save(reference("19:team", "aaaa0000-0000-0000-0000-000000000009", conversation_type="groupChat"),
                   trusted=True)
    assert app.people.find(TENANT, ["aaaa0000-0000-0000-0000-000000000008"]) == {}

    assert app.addresses.index_people() == 1
    assert app.people.find(TENANT, ["aaaa0000-0000-0000-0000-000000000008"]) == {
        "aaaa0000-0000-0000-0000-000000000008": PersonalChat("msteams", "a:old")}


def test_an_aad_object_id_that_is_no_guid_indexes_nothing_and_breaks_no_turn(app_env):
    app = services.get()

    assert app.addresses.save(reference("a:odd", "\x1f"), trusted=True)
    assert not app.addresses.installed_by_the_app(reference("a:odd", "\x1f"))
    assert app.people.find(TENANT, ["\x1f"]) == {}
