"""What the app has stored: every entity of its tables and the count of its queues' messages, to compare
before and after an input (a refused input must leave it as it was)."""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient

TABLE_SETTINGS = ("AddressesTableName", "DialogStateTableName", "SurveyAnswersTableName", "DeliveriesTableName",
                  "NotificationsTableName")


def snapshot(app_env: Any) -> frozenset[tuple[str, ...]]:
    """(table setting, PartitionKey, RowKey, ETag) of every entity, plus the jobs queue's message count
    (delayed messages included)."""
    connection = app_env.values["AzureWebJobsStorage"]
    service = TableServiceClient.from_connection_string(connection)
    settings = {app_env.values[setting]: setting for setting in TABLE_SETTINGS}
    rows: set[tuple[str, ...]] = set()
    # The tables made so far, in one query: a table never made holds nothing, and asking it would cost a round trip.
    for made in service.query_tables(" or ".join(f"TableName eq '{name}'" for name in settings)):
        table = service.get_table_client(made.name)
        try:
            for entity in table.list_entities(select=["PartitionKey", "RowKey"]):
                rows.add((settings[made.name], entity["PartitionKey"], entity["RowKey"], str(entity.metadata.get("etag"))))
        except ResourceNotFoundError:
            pass
    rows.add(("queue", str(queue_count(connection, app_env.values["JobsQueueName"]))))
    return frozenset(rows)


def queue_count(connection: str, name: str) -> int:
    try:
        return QueueClient.from_connection_string(connection, name).get_queue_properties().approximate_message_count
    except ResourceNotFoundError:
        return 0


def snapshot_of_nothing(app_env: Any) -> frozenset[tuple[str, ...]]:
    """What `snapshot` says of an app that has stored nothing at all."""
    return frozenset({("queue", "0")})


def table_rows(app_env: Any, setting: str) -> list[Any]:
    """Every entity of the table named by `setting` (AcknowledgementsTableName, say); none when it was never made."""
    service = TableServiceClient.from_connection_string(app_env.values["AzureWebJobsStorage"])
    try:
        return list(service.get_table_client(app_env.values[setting]).list_entities())
    except ResourceNotFoundError:
        return []
