"""The address store on real Table Storage: keys for hostile ids, queries, paging, deactivation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableServiceClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference
from shared_code.storage.addresses import AddressStore
from shared_code.storage.keys import decode_key, encode_key

FORBIDDEN_IN_KEYS = set("/\\#?") | {chr(c) for c in range(0x20)} | {chr(c) for c in range(0x7F, 0xA0)}

hostile_ids = st.one_of(
    st.text(min_size=1, max_size=40),
    st.text(alphabet=st.sampled_from(list("/\\#?:@;'\"%&=+ \t\n\x00\x01\x7f\u0085é漢😀")), min_size=1, max_size=40),
    st.text(min_size=400, max_size=700),
)


def reference(conversation_id: str, channel_id: str = "msteams", user_id: str = "u1", service_url: str = "http://x") -> ConversationReference:
    return ConversationReference(
        channel_id=channel_id,
        service_url=service_url,
        conversation=ConversationAccount(id=conversation_id),
        user=ChannelAccount(id=user_id),
        bot=ChannelAccount(id="bot"),
        locale="en-US",
    )


@pytest.fixture(scope="module")
def store(storage_connection: str) -> AddressStore:
    table = TableServiceClient.from_connection_string(storage_connection).get_table_client(f"addr{uuid.uuid4().hex[:12]}")
    return AddressStore(table)


@given(hostile_ids)
def test_encoded_keys_never_hold_a_forbidden_character_and_round_trip(value):
    key = encode_key(value)

    assert not (set(key) & FORBIDDEN_IN_KEYS)
    assert len(key) <= 1024
    assert decode_key(key) in (value, None)


@given(hostile_ids, hostile_ids)
def test_distinct_ids_get_distinct_keys(a, b):
    if a != b:
        assert encode_key(a) != encode_key(b)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conversation_id=hostile_ids, channel_id=hostile_ids, user_id=hostile_ids)
def test_any_channels_ids_round_trip_through_the_table(store, conversation_id, channel_id, user_id):
    store.save(reference(conversation_id, channel_id, user_id), trusted=True)

    by_channel = store.get(conversation_id, channel_id)
    by_conversation = store.get(conversation_id)

    assert by_channel is not None and by_channel.reference == reference(conversation_id, channel_id, user_id)
    assert by_conversation is not None and by_conversation.conversation_id == conversation_id
    assert any(a.conversation_id == conversation_id for a in store.find_by_user(user_id))


def test_save_reports_a_new_conversation_once(store):
    conversation_id = f"c-{uuid.uuid4().hex}"

    assert store.save(reference(conversation_id), trusted=False) is True
    assert store.save(reference(conversation_id), trusted=False) is False


def test_save_refreshes_a_changed_service_url(store):
    conversation_id = f"c-{uuid.uuid4().hex}"
    store.save(reference(conversation_id, service_url="http://old"), trusted=True)

    store.save(reference(conversation_id, service_url="http://new"), trusted=True)

    assert store.get(conversation_id).reference.service_url == "http://new"


def test_a_filter_looking_value_is_data_not_a_query(store):
    conversation_id = f"c-{uuid.uuid4().hex}"
    store.save(reference(conversation_id, user_id="real-user"), trusted=False)

    assert store.find_by_user("x' or UserId ne 'x") == []
    assert store.get("x' or RowKey ne 'x") is None


def test_deactivate_keeps_the_reason_and_a_new_message_reactivates(store):
    conversation_id = f"c-{uuid.uuid4().hex}"
    store.save(reference(conversation_id), trusted=True)

    assert store.deactivate("msteams", conversation_id, "ConversationBlockedByUser") is True
    gone = store.get(conversation_id)
    store.save(reference(conversation_id), trusted=True)
    back = store.get(conversation_id)

    assert not gone.active and gone.inactive_reason == "ConversationBlockedByUser"
    assert back.active


def test_deactivate_an_unknown_conversation_is_false(store):
    assert store.deactivate("msteams", f"nobody-{uuid.uuid4().hex}", "gone") is False


def test_paging_yields_every_active_address_once_page_by_page(storage_connection):
    table = TableServiceClient.from_connection_string(storage_connection).get_table_client(f"page{uuid.uuid4().hex[:12]}")
    store = AddressStore(table)
    for i in range(57):
        store.save(reference(f"conv-{i:03d}", channel_id="teams" if i % 2 else "webchat"), trusted=False)
    for i in range(0, 57, 10):
        store.deactivate("teams" if i % 2 else "webchat", f"conv-{i:03d}", "gone")

    pages, continuation, seen = 0, None, []
    while True:
        page = store.page_active(page_size=10, continuation=continuation)
        assert len(page.addresses) <= 10
        seen += [a.conversation_id for a in page.addresses]
        pages += 1
        continuation = page.continuation
        if continuation is None:
            break

    expected = {f"conv-{i:03d}" for i in range(57) if i % 10}
    assert sorted(seen) == sorted(expected)
    assert pages >= 6
    assert {a.conversation_id for a in store.iter_active(channel_id="teams")} == {c for c in expected if int(c[-3:]) % 2}


def test_paging_can_skip_addresses_not_seen_since_a_time(storage_connection):
    table = TableServiceClient.from_connection_string(storage_connection).get_table_client(f"seen{uuid.uuid4().hex[:12]}")
    store = AddressStore(table)
    store.save(reference("old"), trusted=False, now=datetime(2026, 1, 1, tzinfo=UTC))
    store.save(reference("recent"), trusted=False, now=datetime(2026, 11, 1, tzinfo=UTC))

    seen = [a.conversation_id for a in store.iter_active(seen_since=datetime(2026, 6, 1, tzinfo=UTC))]

    assert seen == ["recent"]


def test_purge_removes_exactly_the_addresses_unseen_before_the_cutoff(storage_connection):
    table = TableServiceClient.from_connection_string(storage_connection).get_table_client(f"purge{uuid.uuid4().hex[:12]}")
    store = AddressStore(table)
    cutoff = datetime(2026, 6, 1, tzinfo=UTC)
    for i in range(130):  # more than one page and one transaction
        store.save(reference(f"old-{i}", channel_id="a" if i % 3 else "b"), trusted=False, now=cutoff - timedelta(days=1 + i))
    for i in range(5):
        store.save(reference(f"new-{i}"), trusted=False, now=cutoff + timedelta(seconds=i))
    store.save(reference("exactly-at-cutoff"), trusted=False, now=cutoff)

    deleted = store.purge_unseen(cutoff, page_size=50)

    assert deleted == 130
    assert sorted(a.conversation_id for a in store.iter_active()) == sorted([f"new-{i}" for i in range(5)] + ["exactly-at-cutoff"])


def test_get_many_finds_addresses_across_channels_in_chunks_and_leaves_out_unknown_ones(store):
    prefix = uuid.uuid4().hex[:8]
    teams = [f"{prefix}-t-{i}" for i in range(20)]  # more than one query's worth of row keys
    web = [f"{prefix}-w-{i}" for i in range(3)]
    for cid in teams:
        store.save(reference(cid, "msteams"), trusted=False)
    for cid in web:
        store.save(reference(cid, "webchat"), trusted=False)
    wanted = [("msteams", c) for c in teams] + [("webchat", c) for c in web] + [("msteams", f"{prefix}-nobody"),
                                                                               ("webchat", f"{prefix}-t-1")]

    found = store.get_many(wanted)

    assert set(found) == {("msteams", c) for c in teams} | {("webchat", c) for c in web}
    assert found[("webchat", web[2])].conversation_id == web[2]


def test_get_many_treats_a_filter_looking_id_as_data(store):
    store.save(reference("plain-one", "msteams"), trusted=False)

    found = store.get_many([("msteams", "x' or RowKey ne '"), ("msteams", "plain-one")])

    assert list(found) == [("msteams", "plain-one")]
