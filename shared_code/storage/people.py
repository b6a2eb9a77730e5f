"""People: each person's personal address by Entra object id, and each tenant's serviceUrl.

Graph names people by their Entra (AAD) object id; the addresses table is keyed by conversation.
This table joins the two, so an organisation's broadcast finds the people who already have a chat
with the bot without one Graph call, and a chat made through Graph gets the tenant's serviceUrl.

One partition per tenant (its id, encoded); a row per person (RowKey: the object id, lower case)
naming the channel and conversation of their personal address (and whether the app installed itself
for them, `InstalledByApp`); and one row `~serviceUrl` holding
the serviceUrl of the latest authenticated activity from the tenant. Rows are written when a
personal address is first saved, never on every turn.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared_code.storage.keys import encode_key
from shared_code.storage.tables import on_table, query_or_empty

OBJECT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SERVICE_URL_ROW = "~serviceUrl"  # sorts after every GUID; no object id can be it
MAX_FILTER_COMPARISONS = 15  # Table Storage's limit of comparisons in one filter


@dataclass(frozen=True, slots=True)
class PersonalChat:
    channel_id: str
    conversation_id: str


class PeopleIndex:
    def __init__(self, table: TableClient) -> None:
        self._table = table
        self._service_urls: dict[str, str] = {}  # what this process last wrote per tenant: a cache, safe to lose

    def save(self, tenant_id: str, object_id: str, chat: PersonalChat) -> None:
        """Index `chat` as the person's; an id that is no Entra object id (a GUID) indexes nothing: only Graph's
        people are looked up here, and a row key cannot hold every string an activity may carry."""
        if not OBJECT_ID.match(object_id):
            return
        entity = {"PartitionKey": encode_key(tenant_id), "RowKey": object_id.lower(),
                  "ChannelId": chat.channel_id, "ConversationId": chat.conversation_id}
        on_table(self._table, lambda: self._table.upsert_entity(entity, mode=UpdateMode.MERGE))

    def note_install(self, tenant_id: str, object_id: str) -> None:
        """The app is about to install itself for the person: Teams' conversationUpdate for that install is
        then not greeted as a person who added the bot would be (the notification is the first message)."""
        entity = {"PartitionKey": encode_key(tenant_id), "RowKey": object_id.lower(), "InstalledByApp": True}
        on_table(self._table, lambda: self._table.upsert_entity(entity, mode=UpdateMode.MERGE))

    def installed_by_the_app(self, tenant_id: str, object_id: str) -> bool:
        if not OBJECT_ID.match(object_id):
            return False
        try:
            entity = self._table.get_entity(encode_key(tenant_id), object_id.lower(), select=["InstalledByApp"])
        except ResourceNotFoundError:
            return False
        return bool(entity.get("InstalledByApp"))

    def find(self, tenant_id: str, object_ids: Iterable[str]) -> dict[str, PersonalChat]:
        """The personal chats of those of `object_ids` who have one: a query per 15 ids, in the tenant's partition."""
        wanted = list(dict.fromkeys(o.lower() for o in object_ids))
        found: dict[str, PersonalChat] = {}
        for start in range(0, len(wanted), MAX_FILTER_COMPARISONS):
            chunk = wanted[start:start + MAX_FILTER_COMPARISONS]
            parameters = {f"o{i}": value for i, value in enumerate(chunk)}
            # The SDK substitutes a parameter up to the next space: the ")" must not touch one.
            query = "PartitionKey eq @tenant and ( " + " or ".join(f"RowKey eq @{name}" for name in parameters) + " )"
            for entity in self._query(query, {"tenant": encode_key(tenant_id), **parameters}):
                if entity.get("ConversationId"):  # not a person only noted as installed for
                    found[entity["RowKey"]] = PersonalChat(entity["ChannelId"], entity["ConversationId"])
        return found

    def save_service_url(self, tenant_id: str, service_url: str) -> None:
        if self._service_urls.get(tenant_id) == service_url:
            return  # written by this process already: a tenant's serviceUrl rarely changes
        entity = {"PartitionKey": encode_key(tenant_id), "RowKey": SERVICE_URL_ROW, "ServiceUrl": service_url}
        on_table(self._table, lambda: self._table.upsert_entity(entity, mode=UpdateMode.REPLACE))
        self._service_urls[tenant_id] = service_url

    def service_url(self, tenant_id: str) -> str | None:
        """The serviceUrl of the latest authenticated activity saved from the tenant; None if none came."""
        try:
            entity = self._table.get_entity(encode_key(tenant_id), SERVICE_URL_ROW)
        except ResourceNotFoundError:
            return None
        return entity.get("ServiceUrl") or None

    def _query(self, query: str, parameters: dict[str, str]) -> list[dict[str, str]]:
        return query_or_empty(self._table, query, parameters)
