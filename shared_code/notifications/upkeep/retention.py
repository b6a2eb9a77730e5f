"""Retention: the purge of addresses unseen too long and of finished notifications with their ledger."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from azure.core.exceptions import HttpResponseError

from shared_code.notifications.audience import member_index
from shared_code.notifications.records.acknowledgements import NOTIFICATION_REACTION_PREFIX
from shared_code.notifications.records.ledger import partition_key
from shared_code.notifications.records.reads import partitions_of as read_partitions
from shared_code.notifications.records.store import NOTIFICATION_ROW, PAGE_PREFIX, NotificationState
from shared_code.storage.keys import encode_key
from shared_code.storage.tables import delete_partition, is_table_missing

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices

log = logging.getLogger(__name__)

FINISHED = frozenset({NotificationState.DONE, NotificationState.STOPPED, NotificationState.CANCELLED})


@dataclass(frozen=True, slots=True)
class PurgeResult:
    addresses: int = 0
    notifications: int = 0
    deliveries: int = 0


def purge(services: NotificationServices, *, now: datetime | None = None, page_size: int = 100) -> PurgeResult:
    """Delete what is past retention, a page at a time (never a whole table in memory).

    Addresses unseen for AddressRetentionDays (0 = keep); notifications created more than
    DeliveryRetentionDays ago and finished (0 = keep), with their page summaries, ledger,
    acknowledgements, reactions and reads; reactions older than DeliveryRetentionDays.
    """
    settings = services.settings
    now = (now or services.clock()).astimezone(UTC)
    addresses = notifications = deliveries = 0
    if settings.address_retention_days:
        addresses = services.addresses.purge_unseen(now - timedelta(days=settings.address_retention_days),
                                                    page_size=page_size)
    if settings.delivery_retention_days:
        before = now - timedelta(days=settings.delivery_retention_days)
        for notification_id in _finished_before(services, before, page_size):
            deliveries += purge_notification(services, notification_id, page_size=page_size)
            notifications += 1
        # Reactions kept by conversation (the reports' column) go with the deliveries they were made to.
        services.acknowledgements.purge_reactions(before, page_size=page_size)
    result = PurgeResult(addresses, notifications, deliveries)
    log.info("purge: %d addresses, %d notifications, %d deliveries deleted", *(
        result.addresses, result.notifications, result.deliveries))
    return result


def purge_notification(services: NotificationServices, notification_id: str, *, page_size: int = 100) -> int:
    """Delete one notification: each page's ledger partition, then its own partition (the
    notification row last, so an interrupted purge is found and finished next time)."""
    store = services.notifications
    ledger_table = services.ledger.table
    pk = encode_key(notification_id)
    notification = store.get(notification_id)
    deliveries = 0
    rows = store.table.query_entities("PartitionKey eq @pk", parameters={"pk": pk}, select=["RowKey"],
                                      results_per_page=page_size)
    for page in rows.by_page():
        for row in page:
            if row["RowKey"].startswith(PAGE_PREFIX):
                page_id = row["RowKey"][len(PAGE_PREFIX):]
                deliveries += delete_partition(ledger_table, partition_key(notification_id, page_id),
                                               page_size=page_size)
    acknowledgements = services.table_service.get_table_client(services.settings.acknowledgements_table)
    delete_partition(acknowledgements, pk, page_size=page_size)  # who acknowledged: user data, kept no longer
    delete_partition(acknowledgements, NOTIFICATION_REACTION_PREFIX + pk, page_size=page_size)  # who reacted
    for partition in read_partitions(notification_id):  # who read it, and how many
        delete_partition(acknowledgements, partition, page_size=page_size)
    delete_partition(store.table, member_index.partition_of(notification_id), page_size=page_size)  # a team's
    if notification is not None and notification.created_at is not None:  # its line in the list, and audit trail
        services.catalogue.remove(notification_id, notification.created_at)
    delete_partition(store.table, pk, page_size=page_size, keep_last=NOTIFICATION_ROW)
    return deliveries


def _finished_before(services: NotificationServices, before: datetime, page_size: int) -> Iterator[str]:
    store = services.notifications
    query = store.table.query_entities(
        "RowKey eq @row and CreatedAt lt @before", parameters={"row": NOTIFICATION_ROW, "before": before},
        select=["NotificationId"], results_per_page=page_size)
    try:
        for page in query.by_page():
            for notification_id in [row["NotificationId"] for row in page]:
                found = store.status(notification_id)
                if found is not None and found.state in FINISHED:
                    yield notification_id
    except HttpResponseError as error:  # a table never created holds nothing to purge
        if not is_table_missing(error):
            raise
