"""The address store: where each user can be reached, one Table Storage entity per conversation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared_code.plumbing import limits
from shared_code.protocol.activity import ConversationReference
from shared_code.storage.keys import encode_key
from shared_code.storage.tables import is_table_missing, on_table

# One partition per channel keeps a channel's users together for `channel` broadcasts;
# the row is the conversation, so a user's second conversation is a second address.


@dataclass(frozen=True, slots=True)
class Address:
    """A saved conversation reference and what the app knows about reaching it."""

    reference: ConversationReference
    active: bool = True
    inactive_reason: str = ""
    # The serviceUrl came in an activity whose token was verified: the bot's own token may go there.
    service_url_trusted: bool = False
    last_seen: datetime | None = None

    @property
    def conversation_id(self) -> str:
        return self.reference.conversation.id

    @property
    def channel_id(self) -> str:
        return self.reference.channel_id


@dataclass(frozen=True, slots=True)
class Page:
    addresses: list[Address]
    continuation: dict[str, Any] | None  # None: this was the last page


def address_keys(channel_id: str, conversation_id: str) -> tuple[str, str]:
    return encode_key(channel_id), encode_key(conversation_id)


class AddressStore:
    """Save, find, deactivate and page through addresses. Every query is parameterized."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def save(self, reference: ConversationReference, *, trusted: bool, now: datetime | None = None) -> bool:
        """Insert or refresh the address of `reference`; True if the conversation is new.

        A message from a conversation that was marked inactive makes it active again:
        the user is evidently back.
        """
        entity = _to_entity(Address(reference, service_url_trusted=trusted, last_seen=now or datetime.now(UTC)))
        return on_table(self._table, lambda: self._save(entity))

    def _save(self, entity: dict[str, Any]) -> bool:
        # Most turns come from a known conversation: try the update first (one round trip).
        try:
            self._table.update_entity(entity, mode=UpdateMode.MERGE)  # If-Match: * -- only if it exists
            return False
        except ResourceNotFoundError as error:
            if is_table_missing(error):
                raise
        try:
            self._table.create_entity(entity)
            return True
        except ResourceExistsError:  # created by a concurrent turn in between
            self._table.update_entity(entity, mode=UpdateMode.MERGE)
            return False

    def save_many(self, references: list[ConversationReference], *, trusted: bool) -> None:
        """Upsert many addresses in batches (one transaction per partition and hundred): imports, benchmarks."""
        now = datetime.now(UTC)
        by_partition: dict[str, list[dict[str, Any]]] = {}
        for ref in references:
            entity = _to_entity(Address(ref, service_url_trusted=trusted, last_seen=now))
            by_partition.setdefault(entity["PartitionKey"], []).append(entity)
        for entities in by_partition.values():
            for start in range(0, len(entities), 100):
                batch = [("upsert", e) for e in entities[start : start + 100]]
                on_table(self._table, lambda batch=batch: self._table.submit_transaction(batch))

    def get(self, conversation_id: str, channel_id: str | None = None) -> Address | None:
        """The address of a conversation; with no channel, found by conversation id alone."""
        if channel_id is not None:
            try:
                entity = self._table.get_entity(*address_keys(channel_id, conversation_id))
            except ResourceNotFoundError:  # no such entity, or no table yet: unknown either way
                return None
            return _from_entity(entity)
        found = self._query("RowKey eq @row", {"row": encode_key(conversation_id)})
        return next((a for a in map(_from_entity, found) if a.conversation_id == conversation_id), None)

    def find_by_user(self, user_id: str) -> list[Address]:
        return [_from_entity(e) for e in self._query("UserId eq @user", {"user": user_id})]

    def _query(self, query: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            return list(self._table.query_entities(query, parameters=parameters))
        except ResourceNotFoundError as error:
            if is_table_missing(error):
                return []
            raise

    def deactivate(self, channel_id: str, conversation_id: str, reason: str) -> bool:
        """Mark an address inactive (the bot was removed or blocked); False if unknown."""
        partition, row = address_keys(channel_id, conversation_id)
        try:
            self._table.update_entity(
                {"PartitionKey": partition, "RowKey": row, "Active": False, "InactiveReason": reason[:1024]},
                mode=UpdateMode.MERGE,  # If-Match: * -- only if it exists
            )
            return True
        except ResourceNotFoundError:
            return False

    def page_active(
        self,
        *,
        page_size: int = 100,
        continuation: dict[str, Any] | None = None,
        channel_id: str | None = None,
        seen_since: datetime | None = None,
    ) -> Page:
        """One page of active addresses (optionally of one channel, optionally only those seen since
        a time) and where the next page starts."""
        clauses, parameters = ["Active eq @active"], {"active": True}
        if channel_id is not None:
            clauses.insert(0, "PartitionKey eq @partition")
            parameters["partition"] = encode_key(channel_id)
        if seen_since is not None:
            clauses.append("LastSeen ge @since")
            parameters["since"] = seen_since
        pages = self._table.query_entities(
            " and ".join(clauses), parameters=parameters, results_per_page=page_size
        ).by_page(continuation_token=continuation)
        try:
            entities = list(next(pages))
        except StopIteration:
            return Page([], None)
        except ResourceNotFoundError as error:
            if is_table_missing(error):
                return Page([], None)
            raise
        return Page([_from_entity(e) for e in entities], pages.continuation_token)

    def purge_unseen(self, before: datetime, *, page_size: int = 100) -> int:
        """Delete addresses not seen since `before`, a page at a time; returns how many went."""
        deleted = 0
        query = self._table.query_entities(
            "LastSeen lt @before", parameters={"before": before}, select=["PartitionKey", "RowKey"],
            results_per_page=page_size,
        )
        try:
            for page in query.by_page():
                by_partition: dict[str, list[dict[str, Any]]] = {}
                for entity in page:
                    by_partition.setdefault(entity["PartitionKey"], []).append(entity)
                for partition_entities in by_partition.values():
                    # A transaction holds one partition and at most 100 operations.
                    for start in range(0, len(partition_entities), 100):
                        chunk = partition_entities[start : start + 100]
                        self._table.submit_transaction([("delete", e) for e in chunk])
                        deleted += len(chunk)
        except ResourceNotFoundError as error:
            if not is_table_missing(error):
                raise
        return deleted

    def iter_active(
        self, *, page_size: int = 100, channel_id: str | None = None, seen_since: datetime | None = None
    ) -> Iterator[Address]:
        continuation: dict[str, Any] | None = None
        while True:
            page = self.page_active(
                page_size=page_size, continuation=continuation, channel_id=channel_id, seen_since=seen_since
            )
            yield from page.addresses
            if page.continuation is None:
                return
            continuation = page.continuation


def _to_entity(address: Address) -> dict[str, Any]:
    ref = address.reference
    partition, row = address_keys(ref.channel_id, ref.conversation.id)
    return {
        "PartitionKey": partition,
        "RowKey": row,
        "ChannelId": ref.channel_id,
        "ConversationId": ref.conversation.id,
        "UserId": ref.user.id,
        "ServiceUrl": ref.service_url,
        "Locale": ref.locale,
        "Reference": _reference_json(ref),
        "Active": address.active,
        "InactiveReason": address.inactive_reason,
        "ServiceUrlTrusted": address.service_url_trusted,
        "LastSeen": address.last_seen,
    }


def _reference_json(reference: ConversationReference) -> str:
    """The stored reference, which must fit one string property: the other properties are parts of it."""
    return limits.fitting(json.dumps(reference.to_json(), ensure_ascii=False), "the conversation reference")


def _from_entity(entity: dict[str, Any]) -> Address:
    reference = ConversationReference.from_json(json.loads(entity["Reference"]))
    last_seen = entity.get("LastSeen")
    return Address(
        reference=reference,
        active=bool(entity.get("Active", True)),
        inactive_reason=entity.get("InactiveReason") or "",
        service_url_trusted=bool(entity.get("ServiceUrlTrusted", False)),
        last_seen=last_seen if isinstance(last_seen, datetime) else None,
    )

