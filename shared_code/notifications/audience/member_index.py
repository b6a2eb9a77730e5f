"""Member index: which frozen page of a team broadcast each member belongs to, so no member is in two.

A team's roster is read a page at a time while the team changes: a member added or removed
meanwhile shifts the rest, and the same member can be listed on two pages. The ledger is per
page, so it cannot see that; this index can. It is one partition per notification in the
Notifications table (`<notification key>.members`, a name no notification's own partition can
have: base64url has no dot), one row per member, holding the page that listed the member first.

A scan writes its page's rows in transactions of 100 (a few table operations per page, not one
per member) before it freezes the page; a member whose row already names another page is left
out of this one. A retried scan finds its own rows again and keeps those members.
"""

from __future__ import annotations

from collections.abc import Sequence

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient

from shared_code.notifications.records.ledger import RecipientKey
from shared_code.storage.keys import encode_key
from shared_code.storage.tables import ensure_table

BATCH = 100  # an entity-group transaction's limit


def partition_of(notification_id: str) -> str:
    return f"{encode_key(notification_id)}.members"


def first_listings(table: TableClient, notification_id: str, page: str,
                   keys: Sequence[RecipientKey]) -> list[RecipientKey]:
    """`keys` (duplicates dropped) without the members an earlier page of the notification listed."""
    ensure_table(table)
    pk = partition_of(notification_id)
    unique = list(dict.fromkeys(keys))
    kept: list[RecipientKey] = []
    for start in range(0, len(unique), BATCH):
        chunk = unique[start:start + BATCH]
        entities = [{"PartitionKey": pk, "RowKey": key.row_key, "Page": page} for key in chunk]
        try:
            table.submit_transaction([("create", entity) for entity in entities])
            kept.extend(chunk)
            continue
        except Exception:  # TableTransactionError: one of them is indexed already; nothing was written
            pass
        # Rare (a retried scan, or a member listed twice): settle each member on its own.
        kept.extend(key for key, entity in zip(chunk, entities, strict=True) if _listed_here(table, entity, page))
    return kept


def _listed_here(table: TableClient, entity: dict[str, str], page: str) -> bool:
    for _ in range(3):
        try:
            table.create_entity(entity)
            return True
        except ResourceExistsError:
            pass
        try:
            return table.get_entity(entity["PartitionKey"], entity["RowKey"]).get("Page") == page
        except ResourceNotFoundError:  # purged in between: try to claim it again
            continue
    return False
