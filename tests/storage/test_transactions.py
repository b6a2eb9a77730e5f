"""`tables.submit_transaction` on real Table Storage: what the SDK's submit_transaction writes, answers and raises."""

from __future__ import annotations

import uuid

import pytest
from azure.core import MatchConditions
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

from shared_code.storage.tables import is_table_missing, submit_transaction


@pytest.fixture
def table(storage_connection: str) -> TableClient:
    client = TableServiceClient.from_connection_string(storage_connection).get_table_client(f"tx{uuid.uuid4().hex[:12]}")
    client.create_table()
    return client


def test_every_kind_of_operation_is_written_and_answered_with_its_etag(table: TableClient) -> None:
    first = table.create_entity({"PartitionKey": "p", "RowKey": "a", "N": 1})
    answers = submit_transaction(table, [
        ("create", {"PartitionKey": "p", "RowKey": "b", "Text": "é 漢 😀 \"quoted\"\r\n--boundary", "N": 2}),
        ("update", {"PartitionKey": "p", "RowKey": "a", "N": 3},
         {"mode": UpdateMode.REPLACE, "etag": first["etag"], "match_condition": MatchConditions.IfNotModified}),
        ("upsert", {"PartitionKey": "p", "RowKey": "c", "F": 1.5}, {"mode": UpdateMode.MERGE}),
    ])
    assert [answer["etag"] for answer in answers] == [table.get_entity("p", row).metadata["etag"] for row in "bac"]
    assert table.get_entity("p", "b")["Text"] == "é 漢 😀 \"quoted\"\r\n--boundary"
    assert table.get_entity("p", "a")["N"] == 3
    assert submit_transaction(table, [("delete", {"PartitionKey": "p", "RowKey": row}) for row in "bc"]) == [{}, {}]
    assert [e["RowKey"] for e in table.list_entities()] == ["a"]


def test_a_refused_operation_refuses_the_whole_transaction_as_the_sdk_does(table: TableClient) -> None:
    table.create_entity({"PartitionKey": "p", "RowKey": "taken"})
    with pytest.raises(TableTransactionError) as refused:
        submit_transaction(table, [("create", {"PartitionKey": "p", "RowKey": "new"}),
                                   ("create", {"PartitionKey": "p", "RowKey": "taken"})])
    assert (refused.value.status_code, refused.value.error_code, refused.value.index) == (409, "EntityAlreadyExists", 1)
    assert [e["RowKey"] for e in table.list_entities()] == ["taken"]
    with pytest.raises(TableTransactionError) as stale:
        submit_transaction(table, [("update", {"PartitionKey": "p", "RowKey": "taken"},
                                    {"mode": UpdateMode.REPLACE, "etag": 'W/"datetime\'2000-01-01T00%3A00%3A00Z\'"',
                                     "match_condition": MatchConditions.IfNotModified})])
    assert stale.value.status_code == 412


def test_a_missing_table_is_reported_as_missing(storage_connection: str) -> None:
    table = TableServiceClient.from_connection_string(storage_connection).get_table_client(f"none{uuid.uuid4().hex[:12]}")
    with pytest.raises(TableTransactionError) as missing:
        submit_transaction(table, [("create", {"PartitionKey": "p", "RowKey": "a"})])
    assert is_table_missing(missing.value)


def test_a_full_transaction_of_a_hundred(table: TableClient) -> None:
    answers = submit_transaction(table, [("create", {"PartitionKey": "p", "RowKey": f"{i:03d}", "Pad": "x" * 1000})
                                         for i in range(100)])
    assert len(answers) == 100 and all(answer["etag"] for answer in answers)


def test_operations_written_here_are_the_sdks_bytes(table: TableClient) -> None:
    from datetime import UTC, datetime

    from azure.data.tables import EdmType, EntityProperty
    from azure.data.tables._table_batch import TableBatchOperations

    from shared_code.storage.tables import _serialize, _written_here

    entity = {"PartitionKey": "it's/a #key?", "RowKey": "é'漢😀%20", "Text": "\"x\"\r\n", "Int": 7, "Big": EntityProperty(2**40, EdmType.INT64),
              "Float": 1.5, "Whole": 2.0, "Flag": True, "When": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
              "Bytes": b"\x00\xff", "Empty": ""}
    operations = [("create", entity),
                  ("update", entity, {"mode": UpdateMode.REPLACE, "etag": 'W/"datetime\'2026-01-01T00%3A00%3A00Z\'"',
                                      "match_condition": MatchConditions.IfNotModified})]
    endpoint = f"{table.scheme}://{table._primary_hostname}"
    batch = TableBatchOperations(config=table._client._config, endpoint=endpoint, table_name=table.table_name)
    for operation in operations:
        batch.add_operation(operation)
    now = "Sat, 28 Nov 2026 06:52:46 GMT"
    assert _written_here(endpoint, table.table_name, table.api_version, operations, now) == \
        [_serialize(request, now) for request in batch.requests]
    # Anything else is left to the SDK: another kind, an unconditional update, two partitions.
    assert _written_here(endpoint, table.table_name, table.api_version, [("upsert", entity)], now) is None
    assert _written_here(endpoint, table.table_name, table.api_version,
                         [("update", entity, {"mode": UpdateMode.REPLACE})], now) is None
    assert _written_here(endpoint, table.table_name, table.api_version,
                         [("create", entity), ("create", dict(entity, PartitionKey="other"))], now) is None
