"""The team store: the Teams teams the bot is installed in (or was), one Table Storage entity per team."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared_code.protocol.activity import ConversationReference
from shared_code.storage.keys import encode_key
from shared_code.storage.tables import is_table_missing, on_table

# Teams are few (one row per install): one partition, listed whole.
PARTITION = "team"


@dataclass(frozen=True, slots=True)
class Team:
    """A team and how to reach it: `root` is the address of its root (General) channel, whose bot,
    serviceUrl and tenant are also those of a 1:1 created with one of its members."""

    id: str
    name: str
    aad_group_id: str
    tenant_id: str
    root: ConversationReference
    installed: bool = True
    # The serviceUrl came in an authenticated activity: the bot's token may go there.
    service_url_trusted: bool = False
    updated_at: datetime | None = None

    @property
    def service_url(self) -> str:
        return self.root.service_url

    def to_json(self) -> dict[str, Any]:
        """What GET /api/teams shows of a team."""
        return {"id": self.id, "name": self.name, "aadGroupId": self.aad_group_id, "tenantId": self.tenant_id,
                "channelId": self.root.channel_id, "installed": self.installed}


class TeamStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def save(self, team: Team, *, now: datetime | None = None) -> None:
        """Insert or refresh a team, installed (an install, an upgrade, any activity from the team)."""
        entity = _to_entity(team, now or datetime.now(UTC))
        on_table(self._table, lambda: self._table.upsert_entity(entity, mode=UpdateMode.MERGE))

    def rename(self, team_id: str, name: str) -> bool:
        """teamRenamed: the new name; False for a team never saved."""
        return self._merge(team_id, {"Name": name})

    def mark_uninstalled(self, team_id: str, *, now: datetime | None = None) -> bool:
        """The bot left the team: kept, so an operator still sees it, but no longer installed."""
        return self._merge(team_id, {"Installed": False, "UninstalledAt": now or datetime.now(UTC)})

    def get(self, team_id: str) -> Team | None:
        try:
            entity = self._table.get_entity(PARTITION, encode_key(team_id))
        except ResourceNotFoundError:  # no such team, or no table yet
            return None
        return _from_entity(entity)

    def list(self) -> list[Team]:
        """Every team the bot was ever installed in, by name."""
        try:
            entities = list(self._table.query_entities("PartitionKey eq @pk", parameters={"pk": PARTITION}))
        except HttpResponseError as error:
            if is_table_missing(error):
                return []
            raise
        return sorted((_from_entity(e) for e in entities), key=lambda t: (t.name.lower(), t.id))

    def _merge(self, team_id: str, values: dict[str, Any]) -> bool:
        entity = {"PartitionKey": PARTITION, "RowKey": encode_key(team_id), **values, "UpdatedAt": datetime.now(UTC)}
        try:
            self._table.update_entity(entity, mode=UpdateMode.MERGE)  # If-Match: * -- only if it exists
            return True
        except ResourceNotFoundError:
            return False


def _to_entity(team: Team, now: datetime) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": PARTITION,
        "RowKey": encode_key(team.id),
        "TeamId": team.id,
        "ServiceUrl": team.service_url,
        "Root": json.dumps(team.root.to_json(), ensure_ascii=False),
        "Installed": team.installed,
        "ServiceUrlTrusted": team.service_url_trusted,
        "UpdatedAt": now,
    }
    # An activity that lacks one of these (some installationUpdates carry no name) keeps the one known.
    for name, value in (("Name", team.name), ("AadGroupId", team.aad_group_id), ("TenantId", team.tenant_id)):
        if value:
            entity[name] = value
    return entity


def _from_entity(entity: dict[str, Any]) -> Team:
    updated = entity.get("UpdatedAt")
    return Team(
        id=entity["TeamId"],
        name=entity.get("Name") or "",
        aad_group_id=entity.get("AadGroupId") or "",
        tenant_id=entity.get("TenantId") or "",
        root=ConversationReference.from_json(json.loads(entity["Root"])),
        installed=bool(entity.get("Installed", True)),
        service_url_trusted=bool(entity.get("ServiceUrlTrusted", False)),
        updated_at=updated if isinstance(updated, datetime) else None,
    )
