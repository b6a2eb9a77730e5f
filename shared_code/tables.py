"""Table Storage helpers shared by the stores: create a table on first use, not on every cold start."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableErrorCode

T = TypeVar("T")


def is_table_missing(error: ResourceNotFoundError) -> bool:
    """A 404 for the table itself, not for an entity in it."""
    code = getattr(error, "error_code", None)
    return code == TableErrorCode.TABLE_NOT_FOUND or str(code) == "TableNotFound" or "TableNotFound" in str(error)


def on_table(table: TableClient, operation: Callable[[], T]) -> T:
    """Run `operation`; if the table does not exist yet, create it and run it once more.

    Creating up front would cost every cold start a round trip; a missing table
    happens once per table in the app's life.
    """
    try:
        return operation()
    except ResourceNotFoundError as error:
        if not is_table_missing(error):
            raise
    try:
        table.create_table()
    except ResourceExistsError:
        pass
    return operation()
