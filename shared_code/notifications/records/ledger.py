"""Delivery ledger: one record per (notification, recipient) so a message goes out at most once.

Shape (after aws-lambda-powertools' idempotency records): the claim is a conditional
insert of an IN_PROGRESS record (`create_entity` fails if anyone claimed first); the
outcome replaces it, guarded by the ETag the claim returned. A recipient that failed
transiently is left in RETRY, which a later page job claims again with an ETag-guarded
update, so only one of two hosts running the same page can win it.

The window between the connector's answer and the SENT mark cannot be closed (the
connector has no idempotency key). We choose AT-MOST-ONCE for it: a claim still
IN_PROGRESS after the lease is never sent again; it becomes FAILED with the code
`outcome_unknown`. The claim is taken right before the POST (after the rate-limit
wait), so such a record really means "the send may have happened", not "queued".

A person reached through Microsoft Graph is claimed before the steps that come before their first
message (install the app for them, find its chat), and the claim's `Step` says how far they got:
`install`, then `chat` once the app is installed, then "" once the chat is saved and the send may
happen. Each step is an ETag-guarded replace that also renews the lease. A claim abandoned at
`install` or `chat` cannot have been sent, so it is claimed again where it stopped, never marked
`outcome_unknown`; a retried or duplicated job never installs twice nor sends twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared_code.storage.keys import encode_key
from shared_code.storage.tables import ensure_table, submit_transaction


@lru_cache(maxsize=8192)  # a page's keys are asked for again by its claims, finishes and counts
def _row_key(channel_id: str, conversation_id: str) -> str:
    # Fixed length whatever the ids: two encoded ids could exceed the 1 KiB key limit.
    raw = json.dumps([channel_id, conversation_id], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


class DeliveryState(StrEnum):
    IN_PROGRESS = "in_progress"  # claimed; the send may have happened
    RETRY = "retry"  # failed transiently; claimable again
    SENT = "sent"
    FAILED = "failed"  # attempts exhausted, refused by the channel, or outcome unknown
    GONE = "gone"  # 403/404: the user removed or blocked the bot; address deactivated
    INACTIVE = "inactive"  # the address was inactive or deleted when its turn came
    CANCELLED = "cancelled"  # the notification was cancelled before this one's turn


TERMINAL = frozenset({DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.GONE, DeliveryState.INACTIVE,
                      DeliveryState.CANCELLED})


class Step(StrEnum):
    """Where a claimed recipient reached through Graph stands, before its send (see the module's note)."""

    SEND = ""  # the send may happen: the usual claim
    INSTALL = "install"  # the app is to be installed for the person
    CHAT = "chat"  # installed; its chat is to be found and saved


BEFORE_SEND = frozenset({Step.INSTALL, Step.CHAT})



@dataclass(frozen=True, slots=True)
class RecipientKey:
    channel_id: str
    conversation_id: str

    @property
    def row_key(self) -> str:
        return _row_key(self.channel_id, self.conversation_id)

    @property
    def well_formed(self) -> bool:
        """False for ids no URL or queue message can carry (a lone surrogate, saved before the edges checked)."""
        try:
            self.channel_id.encode("utf-8")
            self.conversation_id.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True

    def to_json(self) -> list[str]:
        return [self.channel_id, self.conversation_id]

    @classmethod
    def from_json(cls, data: Any) -> RecipientKey:
        if not (isinstance(data, list) and len(data) == 2 and all(isinstance(x, str) and x for x in data)):
            raise ValueError("a recipient key is [channel id, conversation id]")
        return cls(data[0], data[1])


@dataclass(frozen=True, slots=True)
class Delivery:
    key: RecipientKey
    state: DeliveryState
    attempts: int = 0
    claimed_at: float = 0.0  # epoch seconds of the latest claim
    code: str = ""
    detail: str = ""
    etag: str = ""
    # Of a SENT message: the id the connector returned (empty when it returned none: Teams may split
    # text and attachments into two messages; such a message cannot be edited or recalled), and when.
    activity_id: str = ""
    sent_at: datetime | None = None
    # The notification's content version it was sent with; then what edits and a recall did to it
    # (written by after_send.edits with ETag-guarded merges, never by delivery).
    content_version: int = 0
    edited_version: int = 0
    edit_code: str = ""  # "" updated (or never edited), "in_progress" claimed, else why the update failed
    recall_code: str = ""  # "" not recalled, "deleted", "in_progress" claimed, else why the delete failed
    step: Step = Step.SEND  # of a claim (or a retry) of a person reached through Graph: how far it got
    # Of a SENT message whose recipient is a person, not a conversation (a team's member, a person of the
    # organisation): the conversation it went to, for edits and recalls.
    sent_to: str = ""


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"  # ours: send now
    DONE = "done"  # someone finished it (or gave up on it): skip
    BUSY = "busy"  # another host holds a live claim: look again after `wait`


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: ClaimOutcome
    delivery: Delivery | None = None
    wait: float = 0.0


@dataclass(frozen=True, slots=True)
class Finish:
    """The outcome of a claimed send, to be written with the claim's ETag."""

    claimed: Delivery
    state: DeliveryState
    code: str = ""
    detail: str = ""
    # False for a try the channel throttled: throttling is never the recipient's fault, so it
    # does not use up one of the recipient's SendMaxAttempts.
    counted: bool = True
    retry_after: float = -1.0  # for RETRY: seconds the channel asked us to wait (-1: back off as usual)
    activity_id: str = ""  # for SENT: what the connector answered
    content_version: int = 0  # for SENT: the notification's content version that was sent
    sent_to: str = ""  # for SENT to a person: the conversation id, when it is not the key's

    @property
    def record(self) -> Delivery:
        attempts = self.claimed.attempts if self.counted else max(0, self.claimed.attempts - 1)
        sent = self.state is DeliveryState.SENT
        sent_at = datetime.now(UTC) if sent else None
        # A retry resumes at the step it stopped at.
        return Delivery(self.claimed.key, self.state, attempts, self.claimed.claimed_at, self.code, self.detail[:500],
                        activity_id=self.activity_id, sent_at=sent_at, content_version=self.content_version,
                        step=Step.SEND if sent else self.claimed.step, sent_to=self.sent_to)


# An entity-group transaction holds at most 100 operations: at most this many outcomes recorded and
# this many new claims (claim_window).
MAX_CHUNK = 50


def partition_key(notification_id: str, page: str) -> str:
    return f"{encode_key(notification_id)}.{page}"


class Ledger:
    def __init__(self, table: TableClient, *, lease_seconds: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._lease = lease_seconds
        self._clock = clock

    @property
    def table(self) -> TableClient:
        return self._table

    def page(self, notification_id: str, page: str) -> dict[RecipientKey, Delivery]:
        """Every record of one page: one partition query, not a read per recipient."""
        ensure_table(self._table)
        # Only what a Delivery holds: UpdatedAt and the Timestamp would each be a datetime parsed per record.
        found = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": partition_key(notification_id, page)}, select=list(_READ)
        )
        records = (_from_entity(e) for e in found)
        return {d.key: d for d in records}

    def claim(self, notification_id: str, page: str, key: RecipientKey, known: Delivery | None = None,
              step: Step = Step.SEND) -> Claim:
        """Make `key` ours to send (a fresh claim at `step`), or say why not. Races are settled by the table."""
        ensure_table(self._table)
        pk = partition_key(notification_id, page)
        if known is None:
            record = Delivery(key, DeliveryState.IN_PROGRESS, attempts=1, claimed_at=self._clock(), step=step)
            try:
                meta = self._table.create_entity(_to_entity(pk, record))
                return Claim(ClaimOutcome.CLAIMED, _with_etag(record, meta))
            except ResourceExistsError:
                known = self._get(pk, key)
        for _ in range(5):
            if known is None:  # deleted under us: nobody else can hold it
                return self.claim(notification_id, page, key, None, step)
            if known.state in TERMINAL:
                return Claim(ClaimOutcome.DONE, known)
            now = self._clock()
            if known.state is DeliveryState.IN_PROGRESS:
                age = now - known.claimed_at
                if age < self._lease:
                    return Claim(ClaimOutcome.BUSY, known, wait=self._lease - age)
                if known.step in BEFORE_SEND:  # abandoned before any send could happen: resume where it stopped
                    record = Delivery(key, DeliveryState.IN_PROGRESS, known.attempts, now, step=known.step)
                else:  # abandoned mid-send: at-most-once, so never send again (see module docstring)
                    record = Delivery(key, DeliveryState.FAILED, known.attempts, known.claimed_at, "outcome_unknown",
                                      "the sending host stopped between the send and its record; not resent")
            else:  # RETRY
                record = Delivery(key, DeliveryState.IN_PROGRESS, attempts=known.attempts + 1, claimed_at=now,
                                  step=known.step)
            try:
                meta = self._replace(pk, record, known.etag)
            except (ResourceModifiedError, ResourceNotFoundError):
                known = self._get(pk, key)
                continue
            if record.state is DeliveryState.FAILED:
                return Claim(ClaimOutcome.DONE, _with_etag(record, meta))
            return Claim(ClaimOutcome.CLAIMED, _with_etag(record, meta))
        return Claim(ClaimOutcome.BUSY, known, wait=1.0)

    def advance(self, notification_id: str, page: str, claimed: Delivery, step: Step) -> Delivery | None:
        """Record that a claimed recipient reached `step` (and renew its lease); the claim as now held, or
        None when the claim was lost (its lease ran out and another host took it: leave it to that host)."""
        record = replace(claimed, step=step, claimed_at=self._clock(), etag="")
        try:
            meta = self._replace(partition_key(notification_id, page), record, claimed.etag)
        except (ResourceModifiedError, ResourceNotFoundError):
            return None
        return _with_etag(record, meta)

    def finish(self, notification_id: str, page: str, claimed: Delivery, state: DeliveryState,
               code: str = "", detail: str = "") -> None:
        """Record the outcome of a send we claimed (guarded by the claim's ETag)."""
        self._write_finish(partition_key(notification_id, page), Finish(claimed, state, code, detail))

    def _write_finish(self, pk: str, finish: Finish) -> None:
        record = finish.record
        try:
            self._replace(pk, record, finish.claimed.etag)
        except (ResourceModifiedError, ResourceNotFoundError):
            # Our lease ran out and another host wrote `outcome_unknown`; a SENT we saw is the truth.
            if record.state is DeliveryState.SENT:
                self._table.upsert_entity(_to_entity(pk, record), mode=UpdateMode.REPLACE)

    def settle(self, notification_id: str, page: str, finishes: list[Finish],
               wanted: list[tuple[RecipientKey, Delivery | None]] = (),
               steps: Mapping[RecipientKey, Step] | None = None) -> list[Claim]:
        """Write `finishes` and claim `wanted` in ONE entity-group transaction; the claims, in order.

        This is what makes the ledger cheap: a batch of outcomes and claims costs one table
        operation, not three per recipient. Fresh recipients are claimed by a conditional insert and RETRY ones by an
        ETag-guarded replace, exactly as `claim` does one at a time; if the table refuses the
        transaction (another host claimed one of them, a lease ran out), nothing of it was
        written and every finish and claim is done one at a time instead, which settles each
        race on its own. Recipients still IN_PROGRESS (a dead host's claim) go that slow way too.
        `steps` gives the first step of a fresh claim of a person reached through Graph.
        """
        steps = steps or {}
        ensure_table(self._table)
        pk = partition_key(notification_id, page)
        now = self._clock()
        operations: list[tuple[Any, ...]] = []
        for finish in finishes:
            operations.append(("update", _to_entity(pk, finish.record),
                               {"mode": UpdateMode.REPLACE, "etag": finish.claimed.etag,
                                "match_condition": MatchConditions.IfNotModified}))
        planned: list[Delivery | Claim] = []
        for key, known in wanted:
            if known is None:
                record = Delivery(key, DeliveryState.IN_PROGRESS, attempts=1, claimed_at=now,
                                  step=steps.get(key, Step.SEND))
                operations.append(("create", _to_entity(pk, record)))
                planned.append(record)
            elif known.state is DeliveryState.RETRY and known.etag:
                record = Delivery(key, DeliveryState.IN_PROGRESS, attempts=known.attempts + 1, claimed_at=now,
                                  step=known.step)
                operations.append(("update", _to_entity(pk, record),
                                   {"mode": UpdateMode.REPLACE, "etag": known.etag,
                                    "match_condition": MatchConditions.IfNotModified}))
                planned.append(record)
            else:
                planned.append(Claim(ClaimOutcome.BUSY))  # decided one at a time below
        if not operations:
            return [self.claim(notification_id, page, key, known, steps.get(key, Step.SEND)) for key, known in wanted]
        try:
            answers = submit_transaction(self._table, operations)
        except Exception:  # TableTransactionError and friends: nothing of the transaction was written
            for finish in finishes:
                self._write_finish(pk, finish)
            return [self.claim(notification_id, page, key, known, steps.get(key, Step.SEND)) for key, known in wanted]
        claim_answers = list(answers)[len(finishes):]
        claims: list[Claim] = []
        index = 0
        for (key, known), plan in zip(wanted, planned, strict=True):
            if isinstance(plan, Claim):
                claims.append(self.claim(notification_id, page, key, known, steps.get(key, Step.SEND)))
                continue
            meta = claim_answers[index] if index < len(claim_answers) else {}
            index += 1
            claims.append(Claim(ClaimOutcome.CLAIMED, _with_etag(plan, meta)))
        return claims

    def record_sent(self, notification_id: str, page: str, key: RecipientKey, activity_id: str) -> Delivery:
        """Record a message sent outside a page job (a single-conversation send), so it can be edited and
        recalled like a broadcast's; a record already there is kept (and returned)."""
        ensure_table(self._table)
        pk = partition_key(notification_id, page)
        record = Delivery(key, DeliveryState.SENT, attempts=1, claimed_at=self._clock(), activity_id=activity_id,
                          sent_at=datetime.now(UTC))
        try:
            self._table.create_entity(_to_entity(pk, record))
            return record
        except ResourceExistsError:
            return self._get(pk, key) or record

    def get(self, notification_id: str, page: str, key: RecipientKey) -> Delivery | None:
        return self._get(partition_key(notification_id, page), key)

    def record_skips(self, notification_id: str, page: str,
                     skips: Iterable[tuple[RecipientKey, DeliveryState, str]]) -> None:
        """Record recipients skipped without a send (inactive address), in batches of 100.

        A batch is all-or-nothing: if any record already exists (another host got
        there first) the batch fails, and the records are written one by one instead.
        """
        ensure_table(self._table)
        pk = partition_key(notification_id, page)
        entities = [_to_entity(pk, Delivery(k, state, code=code)) for k, state, code in skips]
        for start in range(0, len(entities), 100):
            chunk = entities[start:start + 100]
            try:
                submit_transaction(self._table, [("create", e) for e in chunk])
            except Exception:  # TableTransactionError (a conflict) or a partial failure: go one by one
                for entity in chunk:
                    try:
                        self._table.create_entity(entity)
                    except ResourceExistsError:
                        pass

    def _get(self, pk: str, key: RecipientKey) -> Delivery | None:
        try:
            return _from_entity(self._table.get_entity(pk, key.row_key))
        except ResourceNotFoundError:
            return None

    def _replace(self, pk: str, record: Delivery, etag: str) -> dict[str, Any]:
        return self._table.update_entity(_to_entity(pk, record), mode=UpdateMode.REPLACE,
                                         etag=etag, match_condition=MatchConditions.IfNotModified)


def _with_etag(record: Delivery, meta: dict[str, Any]) -> Delivery:
    return replace(record, etag=str(meta.get("etag") or ""))


def _to_entity(pk: str, record: Delivery) -> dict[str, Any]:
    return {
        "PartitionKey": pk,
        "RowKey": record.key.row_key,
        "ChannelId": record.key.channel_id,
        "ConversationId": record.key.conversation_id,
        "State": record.state.value,
        "Attempts": record.attempts,
        "ClaimedAt": float(record.claimed_at),
        "Code": record.code,
        "Detail": record.detail,
        "UpdatedAt": datetime.now(UTC),
        "ActivityId": record.activity_id,
        **({"SentAt": record.sent_at} if record.sent_at is not None else {}),
        **({"ContentVersion": record.content_version} if record.content_version else {}),
        **({"Step": record.step.value} if record.step else {}),
        **({"SentTo": record.sent_to} if record.sent_to else {}),
    }


_READ = ("ChannelId", "ConversationId", "State", "Attempts", "ClaimedAt", "Code", "Detail", "ActivityId", "SentAt",
         "ContentVersion", "EditedVersion", "EditCode", "RecallCode", "Step", "SentTo")  # every column _from_entity reads


def _from_entity(entity: Any) -> Delivery:
    return Delivery(
        key=RecipientKey(entity["ChannelId"], entity["ConversationId"]),
        state=DeliveryState(entity["State"]),
        attempts=int(entity.get("Attempts") or 0),
        claimed_at=float(entity.get("ClaimedAt") or 0.0),
        code=entity.get("Code") or "",
        detail=entity.get("Detail") or "",
        etag=str(entity.metadata.get("etag") or "") if hasattr(entity, "metadata") else "",
        activity_id=entity.get("ActivityId") or "",
        sent_at=entity.get("SentAt") if isinstance(entity.get("SentAt"), datetime) else None,
        content_version=int(entity.get("ContentVersion") or 0),
        edited_version=int(entity.get("EditedVersion") or 0),
        edit_code=entity.get("EditCode") or "",
        recall_code=entity.get("RecallCode") or "",
        step=Step(entity.get("Step") or ""),
        sent_to=entity.get("SentTo") or "",
    )
