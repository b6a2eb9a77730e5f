"""Table Storage helpers shared by the stores: create a table on first use, not on every cold start."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.data.tables import TableClient, TableErrorCode

T = TypeVar("T")


def is_table_missing(error: HttpResponseError) -> bool:
    """A 404 for the table itself, not for an entity in it (transactions report it as their own error type)."""
    code = getattr(error, "error_code", None)
    return code == TableErrorCode.TABLE_NOT_FOUND or str(code) == "TableNotFound" or "TableNotFound" in str(error)


def on_table(table: TableClient, operation: Callable[[], T]) -> T:
    """Run `operation`; if the table does not exist yet, create it and run it once more.

    Creating up front would cost every cold start a round trip; a missing table
    happens once per table in the app's life.
    """
    try:
        return operation()
    except HttpResponseError as error:
        if not is_table_missing(error):
            raise
    try:
        table.create_table()
    except ResourceExistsError:
        pass
    return operation()


# Tables this process has already made sure of: a cache that is safe to lose.
_known_tables: set[str] = set()


def ensure_table(table: TableClient) -> None:
    """Create `table` if this process has not yet seen it exist (one round trip per table and process)."""
    known = f"{table.url}/{table.table_name}"
    if known in _known_tables:
        return
    try:
        table.create_table()
    except ResourceExistsError:
        pass
    _known_tables.add(known)


def delete_partition(table: TableClient, partition_key: str, *, page_size: int = 100,
                     keep_last: str | None = None) -> int:
    """Delete every entity of one partition, a page (one transaction of at most 100) at a time;
    returns how many went. `keep_last` names a row deleted only after all the others, so a purge
    cut short leaves the record that lets the next run find the rest."""
    deleted = 0
    last: dict[str, str] | None = None
    try:
        query = table.query_entities("PartitionKey eq @pk", parameters={"pk": partition_key},
                                     select=["PartitionKey", "RowKey"], results_per_page=page_size)
        for page in query.by_page():
            batch = []
            for entity in page:
                keys = {"PartitionKey": entity["PartitionKey"], "RowKey": entity["RowKey"]}
                if keep_last is not None and entity["RowKey"] == keep_last:
                    last = keys
                else:
                    batch.append(("delete", keys))
            for start in range(0, len(batch), 100):
                table.submit_transaction(batch[start:start + 100])
                deleted += len(batch[start:start + 100])
        if last is not None:
            table.delete_entity(last["PartitionKey"], last["RowKey"])
            deleted += 1
    except HttpResponseError as error:
        if not is_table_missing(error):
            raise
    return deleted


# Table Storage accepts at most 15 comparisons in one filter: the partition and 14 row keys.
MAX_ROWS_PER_QUERY = 14


def get_many(table: TableClient, partition_key: str, row_keys: list[str],
             select: list[str] | None = None) -> list[dict]:
    """The entities of one partition with these row keys (absent ones left out), in a few queries
    rather than a point read each. The filter's shape is fixed; every value is a parameter."""
    found: list[dict] = []
    try:
        for start in range(0, len(row_keys), MAX_ROWS_PER_QUERY):
            chunk = row_keys[start:start + MAX_ROWS_PER_QUERY]
            rows = " or ".join(f"RowKey eq @r{i}" for i in range(len(chunk)))
            parameters = {"pk": partition_key, **{f"r{i}": key for i, key in enumerate(chunk)}}
            # Spaces around the parentheses: the SDK finds parameters by splitting the filter on spaces.
            found.extend(table.query_entities(f"PartitionKey eq @pk and ( {rows} )", parameters=parameters,
                                              select=select))
    except HttpResponseError as error:
        if not is_table_missing(error):
            raise
    return found
