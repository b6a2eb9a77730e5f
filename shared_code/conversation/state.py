"""The dialog state store: each conversation's dialog stack, one Table Storage entity, written with its ETag."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from shared_code.plumbing import limits
from shared_code.storage.keys import encode_key
from shared_code.storage.tables import on_table

FORMAT_VERSION = 1
# Ids already applied, newest last: proactive jobs, and the user's activities ("activity:<id>").
# Redeliveries (a queue's retries, a channel's) come within minutes, so a short memory is enough.
MAX_REMEMBERED_JOBS = 100
# A longer id is remembered by its digest: a channel's 6,000-character activity ids cannot fill the row.
MAX_REMEMBERED_ID_CHARS = 100
# The stack is one string property: beyond this the state is restarted rather than left unwritable.
MAX_STACK_CHARS = limits.MAX_PROPERTY_CHARS


@dataclass(frozen=True, slots=True)
class Frame:
    """One dialog on the stack and its own state (JSON-compatible)."""

    dialog_id: str
    state: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"dialog": self.dialog_id, "state": self.state}


@dataclass(frozen=True, slots=True)
class ConversationState:
    """A conversation's stack as read, with the ETag a save must match.

    `etag` None: no entity yet (the save creates it). `problem` is set when the stored
    entity could not be read: the frames are then empty and the save replaces it.
    """

    channel_id: str
    conversation_id: str
    frames: tuple[Frame, ...] = ()
    job_ids: tuple[str, ...] = ()
    etag: str | None = None
    problem: str = ""

    def with_stack(self, frames: tuple[Frame, ...], job_ids: tuple[str, ...] | None = None) -> ConversationState:
        jobs = self.job_ids if job_ids is None else tuple(map(remembered, job_ids))[-MAX_REMEMBERED_JOBS:]
        return ConversationState(self.channel_id, self.conversation_id, frames, jobs, self.etag, "")

    def remembers(self, job_id: str) -> bool:
        """Whether the job (or activity, "activity:<id>") was already applied here."""
        return remembered(job_id) in self.job_ids

    def unusable(self, problem: str) -> ConversationState:
        """This state with its stack given up (restarted at the main dialog); the applied ids are kept."""
        return ConversationState(self.channel_id, self.conversation_id, (), self.job_ids, self.etag, problem)


class StateConflict(Exception):
    """Someone else wrote the conversation's state since it was read: read again and re-run."""


class StateTooLarge(Exception):
    """The stack would not fit its table row: the turn restarts the conversation instead."""


def remembered(job_id: str) -> str:
    """How an applied id is kept: as it is, or a digest when it is long."""
    if len(job_id) <= MAX_REMEMBERED_ID_CHARS:
        return job_id
    return "sha256:" + hashlib.sha256(job_id.encode("utf-8", "surrogatepass")).hexdigest()


def state_keys(channel_id: str, conversation_id: str) -> tuple[str, str]:
    return encode_key(channel_id), encode_key(conversation_id)


class DialogStateStore:
    """Load and save dialog stacks with optimistic concurrency (ETag / If-Match)."""

    def __init__(self, table: TableClient) -> None:
        self._table = table

    def load(self, channel_id: str, conversation_id: str) -> ConversationState:
        try:  # a missing table is a missing entity: the table is made by the first save
            entity = self._table.get_entity(*state_keys(channel_id, conversation_id))
        except ResourceNotFoundError:
            return ConversationState(channel_id, conversation_id)
        etag = entity.metadata["etag"]
        stack = entity.get("Stack")
        if isinstance(stack, str) and limits.utf16_len(stack) > MAX_STACK_CHARS:
            return ConversationState(channel_id, conversation_id, etag=etag,
                                     problem=f"the stored stack is larger than {MAX_STACK_CHARS} characters")
        try:
            frames, job_ids = decode_stack(stack)
        except ValueError as bad:
            return ConversationState(channel_id, conversation_id, etag=etag, problem=str(bad))
        # Ids remembered before digests (or beyond today's count) are brought within bounds as read.
        job_ids = tuple(map(remembered, job_ids))[-MAX_REMEMBERED_JOBS:]
        return ConversationState(channel_id, conversation_id, frames, job_ids, etag)

    def save(self, state: ConversationState, *, now: datetime | None = None) -> None:
        """Write `state` only if nobody wrote since it was read; StateConflict otherwise, and
        StateTooLarge (nothing written) when the stack would not fit its property."""
        partition, row = state_keys(state.channel_id, state.conversation_id)
        stack = encode_stack(state.frames, state.job_ids)
        if limits.utf16_len(stack) > MAX_STACK_CHARS:
            raise StateTooLarge(f"the stack would be {limits.utf16_len(stack)} characters, more than {MAX_STACK_CHARS}")
        entity = {
            "PartitionKey": partition,
            "RowKey": row,
            "ChannelId": state.channel_id,
            "ConversationId": state.conversation_id,
            "Stack": stack,
            "UpdatedAt": now or datetime.now(UTC),
        }
        try:
            if state.etag is None:
                on_table(self._table, lambda: self._table.create_entity(entity))
            else:
                self._table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=state.etag, match_condition=MatchConditions.IfNotModified
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as exc:
            # 409: created by someone else first; 412: changed since read; 404: deleted since read.
            raise StateConflict(type(exc).__name__) from None
        except HttpResponseError as exc:
            if exc.status_code in (409, 412):
                raise StateConflict(f"HTTP {exc.status_code}") from None
            raise


def encode_stack(frames: tuple[Frame, ...], job_ids: tuple[str, ...]) -> str:
    data = {"v": FORMAT_VERSION, "stack": [f.to_json() for f in frames], "jobs": list(job_ids)}
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def decode_stack(raw: Any) -> tuple[tuple[Frame, ...], tuple[str, ...]]:
    """The frames and job ids of a stored stack; ValueError says what is wrong with it."""
    if not isinstance(raw, str):
        raise ValueError("no Stack property")
    try:
        data = json.loads(raw)
    except ValueError:
        raise ValueError("the Stack property is not JSON") from None
    if not isinstance(data, dict) or data.get("v") != FORMAT_VERSION:
        raise ValueError(f"unknown stack format {data.get('v') if isinstance(data, dict) else type(data).__name__!r}")
    stack, jobs = data.get("stack"), data.get("jobs", [])
    if not isinstance(stack, list) or not isinstance(jobs, list) or not all(isinstance(j, str) for j in jobs):
        raise ValueError("stack and jobs must be lists")
    frames = []
    for item in stack:
        if not isinstance(item, dict) or not isinstance(item.get("dialog"), str) or not isinstance(item.get("state"), dict):
            raise ValueError("a frame must be {dialog: str, state: object}")
        frames.append(Frame(item["dialog"], item["state"]))
    return tuple(frames), tuple(jobs)
