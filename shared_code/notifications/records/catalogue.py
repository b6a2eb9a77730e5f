"""The catalogue: every notification, newest first, with who created it and who changed it since.

One partition of the Notifications table (`catalogue.`: no notification's encoded key holds a ".", so it
cannot collide), one row per notification, RowKey = the creation time counted down from the year 9999 in
milliseconds, then the encoded id: a plain partition query reads it newest first, a page at a time, and
the continuation is the last RowKey read. The row keeps the audit trail too (`Audit`, JSON: what was done,
by whom, when), so the status and the list read it with the row they read anyway, and a notification's
trail goes with it when retention purges it.

Callers are named by an `Actor`: a signed-in author of the page (their Entra object id and name), or a
service that called the API with a function key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared_code.notifications.jobs import Job, JobKind
from shared_code.plumbing import limits
from shared_code.storage.keys import encode_key
from shared_code.storage.tables import ensure_table

PARTITION = "catalogue."
_END_MS = int(datetime(9999, 1, 1, tzinfo=UTC).timestamp() * 1000)
MAX_AUDIT = 200  # entries kept per notification: edits are rare; a row holds 1 MiB
SUMMARY_CHARS = 140
_WRITE_ATTEMPTS = 5


class Action(StrEnum):
    CREATED = "created"
    EDITED = "edited"
    RECALLED = "recalled"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked: an author signed in to the page (`id` = Entra object id), or a service with a function key."""

    id: str
    name: str

    @classmethod
    def service(cls) -> Actor:
        return cls("", "a service (function key or queue)")

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True, slots=True)
class Entry:
    notification_id: str
    created_at: datetime
    created_by: Actor
    summary: str
    audit: tuple[dict[str, str], ...]
    row_key: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.notification_id, "createdAt": self.created_at.isoformat(),
                "createdBy": self.created_by.to_json(), "summary": self.summary, "audit": list(self.audit)}


def row_key(notification_id: str, created_at: datetime) -> str:
    countdown = _END_MS - int(created_at.astimezone(UTC).timestamp() * 1000)
    return f"{countdown:014d}.{encode_key(notification_id)}"


class Catalogue:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def add(self, notification_id: str, created_at: datetime, actor: Actor, summary: str) -> None:
        """Enter a notification once: a retried create keeps the first author."""
        ensure_table(self._table)
        at = created_at.astimezone(UTC)
        entity = {
            "PartitionKey": PARTITION, "RowKey": row_key(notification_id, at), "NotificationId": notification_id,
            "CreatedAt": at, "CreatedById": actor.id, "CreatedBy": limits.clip(actor.name, 200),
            "Summary": limits.clip(summary, SUMMARY_CHARS),
            "Audit": json.dumps([_audit(Action.CREATED, actor, at)], ensure_ascii=False),
        }
        try:
            self._table.create_entity(entity)
        except ResourceExistsError:
            pass

    def record(self, notification_id: str, created_at: datetime, action: Action, actor: Actor,
               at: datetime) -> None:
        """Append what was done to the notification's trail (optimistic: retried on a concurrent write)."""
        key = row_key(notification_id, created_at)
        for _ in range(_WRITE_ATTEMPTS):
            try:
                entity = self._table.get_entity(PARTITION, key)
            except ResourceNotFoundError:
                return  # created before the catalogue existed: nothing to append to
            trail = _trail(entity.get("Audit"))[-(MAX_AUDIT - 1):] + [_audit(action, actor, at)]
            try:
                self._table.update_entity(
                    {"PartitionKey": PARTITION, "RowKey": key, "Audit": json.dumps(trail, ensure_ascii=False)},
                    mode=UpdateMode.MERGE, etag=entity.metadata["etag"], match_condition=MatchConditions.IfNotModified)
                return
            except ResourceModifiedError:
                continue

    def get(self, notification_id: str, created_at: datetime) -> Entry | None:
        try:
            return _entry(self._table.get_entity(PARTITION, row_key(notification_id, created_at)))
        except ResourceNotFoundError:
            return None

    def newest(self, *, after: str = "", author_id: str | None = None, page_size: int = 50) -> Iterator[Entry]:
        """Entries newest first, from just after the RowKey `after`, optionally only one author's."""
        ensure_table(self._table)
        query, parameters = "PartitionKey eq @pk", {"pk": PARTITION}
        if after:
            query += " and RowKey gt @after"
            parameters["after"] = after
        if author_id is not None:
            query += " and CreatedById eq @author"
            parameters["author"] = author_id
        for entity in self._table.query_entities(query, parameters=parameters, results_per_page=page_size):
            yield _entry(entity)

    def remove(self, notification_id: str, created_at: datetime) -> None:
        try:
            self._table.delete_entity(PARTITION, row_key(notification_id, created_at))
        except ResourceNotFoundError:
            pass


def _audit(action: Action, actor: Actor, at: datetime) -> dict[str, str]:
    return {"action": action.value, "by": actor.name, "byId": actor.id, "at": at.astimezone(UTC).isoformat()}


def _trail(text: Any) -> list[dict[str, str]]:
    try:
        found = json.loads(text) if isinstance(text, str) and text else []
    except ValueError:
        return []
    return [item for item in found if isinstance(item, dict)] if isinstance(found, list) else []


def _entry(entity: Any) -> Entry:
    created = entity.get("CreatedAt")
    return Entry(notification_id=entity["NotificationId"],
                 created_at=created if isinstance(created, datetime) else datetime.fromtimestamp(0, UTC),
                 created_by=Actor(entity.get("CreatedById") or "", entity.get("CreatedBy") or ""),
                 summary=entity.get("Summary") or "", audit=tuple(_trail(entity.get("Audit"))),
                 row_key=entity["RowKey"])


def summary_of(job: Job) -> str:
    """A line that names a notification in a list: its text, else a card's first text, else its dialog."""
    if job.kind is JobKind.DIALOG:
        return f"dialog: {job.dialog}"
    text = job.text or job.content.get("text")
    if isinstance(text, dict):
        text = next((v for v in text.values() if isinstance(v, str)), "")
    if isinstance(text, str) and text.strip():
        return " ".join(text.split())
    return _card_text(job.content.get("attachments")) or "(card)"


def _card_text(node: Any, depth: int = 0) -> str:
    if depth > 8:
        return ""
    if isinstance(node, dict):
        if node.get("type") == "TextBlock" and isinstance(node.get("text"), str):
            return " ".join(node["text"].split())
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            found = _card_text(child, depth + 1)
            if found:
                return found
    return ""


__all__ = ["Action", "Actor", "Catalogue", "Entry", "row_key", "summary_of"]
