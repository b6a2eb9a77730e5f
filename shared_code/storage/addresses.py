"""The address store: where each user can be reached, one Table Storage entity per conversation."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared_code.plumbing import limits
from shared_code.protocol.activity import ConversationReference, is_group_scope, scope_of, with_user
from shared_code.storage.keys import encode_key
from shared_code.storage.people import PeopleIndex, PersonalChat
from shared_code.storage.tables import is_table_missing, on_table, query_or_empty

# One partition per channel keeps a channel's users together for `channel` broadcasts;
# the row is the conversation, so a user's second conversation is a second address.
# A group chat or Teams channel (Scope groupChat/channel) is one address too: the conversation's,
# not a person's. Its user stays the one who first brought the bot there, its UserId column is
# empty (a `user` audience reaches people in their own chats, never a whole group), and TeamId
# names the team of a channel, so an uninstall finds every thread. Rows saved before Scope
# existed read as their conversation says (scope_of).


@dataclass(frozen=True, slots=True)
class Address:
    """A saved conversation reference and what the app knows about reaching it."""

    reference: ConversationReference
    active: bool = True
    inactive_reason: str = ""
    # The serviceUrl came in an activity whose token was verified: the bot's own token may go there.
    service_url_trusted: bool = False
    last_seen: datetime | None = None
    team_id: str = ""  # the Teams team of a channel conversation

    @property
    def scope(self) -> str:
        """personal, groupChat or channel."""
        return scope_of(self.reference.conversation)

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

    def __init__(self, table: TableClient, *, people: PeopleIndex | None = None) -> None:
        self._table = table
        self._people = people

    def save(
        self, reference: ConversationReference, *, trusted: bool, now: datetime | None = None, team_id: str = ""
    ) -> bool:
        """Insert or refresh the address of `reference`; True if the conversation is new.

        A message from a conversation that was marked inactive makes it active again:
        the user is evidently back. In a group chat or channel the saved user is never replaced
        by whoever spoke or joined last (see the note at the top).
        """
        address = Address(reference, service_url_trusted=trusted, last_seen=now or datetime.now(UTC), team_id=team_id)
        entity = _to_entity(address)
        if is_group_scope(reference.conversation):
            return on_table(self._table, lambda: self._save_group(entity, reference))
        created = on_table(self._table, lambda: self._save(entity))
        if created:
            self._index(reference, trusted=trusted)
        return created

    def installed_by_the_app(self, reference: ConversationReference) -> bool:
        """Whether the app installed itself for this personal chat's person (a notification reached them
        through Graph), rather than the person adding the bot."""
        if self._people is None or is_group_scope(reference.conversation) or not reference.user.aad_object_id:
            return False
        tenant = reference.tenant_id or reference.conversation.tenant_id or ""
        return self._people.installed_by_the_app(tenant, reference.user.aad_object_id)

    def index_people(self, *, page_size: int = 500) -> int:
        """Index every active personal address that names its person's object id (people.py); how many."""
        indexed = 0
        for address in self.iter_active(page_size=page_size):
            reference = address.reference
            if self._people is not None and address.scope == "personal" and reference.user.aad_object_id:
                tenant = reference.tenant_id or reference.conversation.tenant_id or ""
                self._people.save(tenant, reference.user.aad_object_id,
                                  PersonalChat(reference.channel_id, reference.conversation.id))
                indexed += 1
        return indexed

    def _index(self, reference: ConversationReference, *, trusted: bool) -> None:
        """A new personal address: findable by the person's Entra object id (people.py), and its serviceUrl
        the tenant's, when an authenticated activity brought it."""
        tenant = reference.tenant_id or reference.conversation.tenant_id or ""
        if self._people is None:
            return
        if reference.user.aad_object_id:
            self._people.save(tenant, reference.user.aad_object_id,
                              PersonalChat(reference.channel_id, reference.conversation.id))
        if trusted:
            self._people.save_service_url(tenant, reference.service_url)

    def _save_group(self, entity: dict[str, Any], reference: ConversationReference) -> bool:
        # Read first: the refresh keeps the saved user, so it needs the saved reference.
        for _ in range(3):
            try:
                saved = self._table.get_entity(entity["PartitionKey"], entity["RowKey"])
            except ResourceNotFoundError as error:
                if is_table_missing(error):
                    raise
                saved = None
            if saved is None:
                try:
                    self._table.create_entity(entity)
                    return True
                except ResourceExistsError:  # created by a concurrent turn in between: read it
                    continue
            kept = with_user(reference, _from_entity(saved).reference.user)
            refreshed = dict(entity, Reference=json.dumps(kept.to_json(), ensure_ascii=False))
            if not entity.get("TeamId"):
                refreshed.pop("TeamId")  # an activity without channelData.team keeps the team known
            self._table.update_entity(refreshed, mode=UpdateMode.MERGE)
            return False
        raise ResourceExistsError("the address kept changing while it was saved")

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

    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Address]:
        """The addresses of many (channel id, conversation id) pairs: one range query per channel, not a read each.

        A broadcast page holds recipients that the scan read in key order, so each channel's share
        is one contiguous RowKey range; rows in the range that were not asked for are dropped.
        """
        wanted: dict[str, dict[str, tuple[str, str]]] = {}
        for channel_id, conversation_id in keys:
            partition, row = address_keys(channel_id, conversation_id)
            wanted.setdefault(partition, {})[row] = (channel_id, conversation_id)
        found: dict[tuple[str, str], Address] = {}
        for partition, rows in wanted.items():
            entities = self._query("PartitionKey eq @p and RowKey ge @first and RowKey le @last",
                                   {"p": partition, "first": min(rows), "last": max(rows)})
            for entity in entities:
                pair = rows.get(entity["RowKey"])
                if pair is not None:
                    found[pair] = _from_entity(entity)
        return found

    def find_by_user(self, user_id: str) -> list[Address]:
        # Group rows saved before Scope existed still carry a UserId: a person is reached in their own chats only.
        found = (_from_entity(e) for e in self._query("UserId eq @user", {"user": user_id}))
        return [a for a in found if not is_group_scope(a.reference.conversation)]

    def find_by_users(self, user_ids: list[str]) -> dict[str, list[Address]]:
        """`find_by_user` for many users at once: one query per 15 ids (Table Storage's limit of
        comparisons in one filter), each a parameterized `UserId eq @u0 or ...`."""
        wanted = list(dict.fromkeys(user_ids))
        found: dict[str, list[Address]] = {}
        for start in range(0, len(wanted), MAX_FILTER_COMPARISONS):
            chunk = wanted[start : start + MAX_FILTER_COMPARISONS]
            parameters = {f"u{i}": user_id for i, user_id in enumerate(chunk)}
            query = " or ".join(f"UserId eq @{name}" for name in parameters)
            for address in map(_from_entity, self._query(query, parameters)):
                if not is_group_scope(address.reference.conversation):
                    found.setdefault(address.reference.user.id, []).append(address)
        return found

    def deactivate_team(self, team_id: str, root_conversation_id: str, reason: str) -> int:
        """Mark every address of a team inactive (the bot was uninstalled): its channels and their
        threads (`<channel>;messageid=<id>`). Rows saved before TeamId existed are found by the root
        channel's id and its threads' ids. Returns how many addresses were marked."""
        # The SDK substitutes a parameter up to the next space: a ")" must not touch one.
        query = ("TeamId eq @team or ConversationId eq @team or ConversationId eq @root"
                 " or ( ConversationId ge @threads and ConversationId lt @after_threads )"
                 " or ( ConversationId ge @team_threads and ConversationId lt @after_team_threads )")
        parameters = {"team": team_id, "root": root_conversation_id,
                      **_thread_range("threads", root_conversation_id), **_thread_range("team_threads", team_id)}
        marked = 0
        for entity in self._query(query, parameters):
            if entity.get("Active", True) is False:
                continue
            try:
                self._table.update_entity(
                    {"PartitionKey": entity["PartitionKey"], "RowKey": entity["RowKey"], "Active": False,
                     "InactiveReason": reason[:1024]},
                    mode=UpdateMode.MERGE,
                )
                marked += 1
            except ResourceNotFoundError:  # purged in between
                pass
        return marked

    def _query(self, query: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        return query_or_empty(self._table, query, parameters)

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


THREAD_MARK = ";messageid="
MAX_FILTER_COMPARISONS = 15


def _thread_range(name: str, channel_conversation_id: str) -> dict[str, str]:
    """Bounds of the ids of a Teams channel's threads: `<channel>;messageid=...` sort between them."""
    start = channel_conversation_id + THREAD_MARK
    return {name: start, f"after_{name}": start[:-1] + chr(ord(start[-1]) + 1)}


def _to_entity(address: Address) -> dict[str, Any]:
    ref = address.reference
    partition, row = address_keys(ref.channel_id, ref.conversation.id)
    group = is_group_scope(ref.conversation)
    return {
        "PartitionKey": partition,
        "RowKey": row,
        "ChannelId": ref.channel_id,
        "ConversationId": ref.conversation.id,
        "UserId": "" if group else ref.user.id,
        "Scope": scope_of(ref.conversation),
        "TeamId": address.team_id,
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
        team_id=entity.get("TeamId") or "",
    )

