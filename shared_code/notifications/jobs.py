"""Proactive jobs: the versioned queue message format, its validation, and putting jobs on the queue.

Wire format, version 1 (JSON, base64 on the queue):

    {"v": 1, "kind": "message", "id": "<notification id>",
     "to": {"conversation": "<id>"} | {"user": "<id>"} | {"channelId": "<id>"} | {"team": "<team id>"}
           | {"teamChannel": "<team id>"} | {"group": "<id>"} | {"users": [...]} | {"tenant": "<id>"} | "all",
     "text": "...", "locale": "en-US"}
    {"v": 1, "kind": "dialog", "dialog": "survey", "id": "...", "to": ...}

Optional, added compatibly (a message needs `text` or `attachments`):
`attachments` (list, e.g. Adaptive Cards), `suggestedActions` ({"actions": [...]}); each of
`text`/`attachments`/`suggestedActions` may instead be a map from locale to value, with
`defaultLocale` naming the fallback (see content.py); `notBefore` (ISO 8601 with a time zone)
delays the notification; `ack` ({"title": "Got it"}, the title optional) adds an
acknowledge button to every message (see content.with_acknowledgement).

The organisation, through Microsoft Graph (audience/organisation.py, sending/reach.py):
`{"group": "<Entra group object id>"}`, `{"users": ["<object id or UPN>", ...]}` (up to 10,000; the
notification keeps the list in rows of its own, its record `{"users": {"listed": n}}`), each with an
optional `"tenant"` beside it, and `{"tenant": "<tenant id>"}` with an optional `"includeGuests": true`.

Any job may carry `traceparent` (W3C Trace Context: its spans join that trace; a malformed one is ignored)
and `delay` (seconds it was queued delayed by, set by the app); neither changes what it asks.

`channelId` is a Bot Framework channel (msteams, webchat), not a Teams channel; `channel` is its first
name, still read. `team` is every current member of a Teams team, each once in their personal chat
(the fan-out reads the roster a page at a time and creates a chat for a member who has none);
`teamChannel` the team's root channel.

`id` is optional for callers (one is made up); it names the notification, so the
same id sent twice is one notification.

An edit of a notification already sent (also version 1; `id` names it, the content fields replace its
content, validated as a message's; `ack` and the audience stay as they were):

    {"v": 1, "kind": "edit", "id": "<notification id>", "text": "...", "attachments": [...], ...}
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from shared_code.plumbing import limits, tracing
from shared_code.plumbing.errors import BadInput
from shared_code.protocol.content import (
    ACK_DEFAULT_TITLE,
    MAX_CONTENT_BYTES,
    Content,
    LocalizedContent,
    check_size,
    parse_content,
    with_acknowledgement,
)
from shared_code.storage import queues

if TYPE_CHECKING:
    from shared_code.conversation.ports import ConversationServices

VERSION = 1
MAX_TEXT_BYTES = MAX_CONTENT_BYTES  # the connector refuses larger messages (MessageSizeTooBig)
MAX_ID_LENGTH = 200
KNOWN_DIALOGS = frozenset({"survey"})
# Envelope fields any job may carry, never part of what it asks: the W3C trace context of the notification's
# trace (a malformed one is ignored: plumbing/tracing.py), and the seconds it was put on the queue delayed by.
TRACEPARENT = tracing.TRACEPARENT
DELAY = "delay"
MAX_ACK_TITLE = 100
# Wire names of the content fields beyond plain `text`, kept as given (validated by parse_content).
CONTENT_FIELDS = ("attachments", "suggestedActions", "defaultLocale")


class JobKind(StrEnum):
    MESSAGE = "message"
    DIALOG = "dialog"


class TargetKind(StrEnum):
    CONVERSATION = "conversation"
    USER = "user"
    CHANNEL = "channel"  # a Bot Framework channel: on the wire `channelId`, or `channel` (its first name)
    TEAM = "team"  # every member of a Teams team, each in their personal chat
    TEAM_CHANNEL = "teamChannel"  # a Teams team's root channel: one conversation
    ALL = "all"
    # The organisation, through Microsoft Graph: people reached in their personal chat with the bot,
    # the app installed for those who never wrote to it.
    GROUP = "group"  # an Entra group's users, nested groups included
    USERS = "users"  # a list of people, by object id or user principal name
    TENANT = "tenant"  # every enabled member (and guest, if asked) of the tenant


ORGANISATION = frozenset({TargetKind.GROUP, TargetKind.USERS, TargetKind.TENANT})
MAX_PEOPLE = 10_000  # in one `users` list


# Wire keys of `to` and the audience each names.
TARGET_KEYS = {
    "conversation": TargetKind.CONVERSATION,
    "user": TargetKind.USER,
    "channelId": TargetKind.CHANNEL,
    "channel": TargetKind.CHANNEL,
    "team": TargetKind.TEAM,
    "teamChannel": TargetKind.TEAM_CHANNEL,
}


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    value: str = ""  # empty for ALL and USERS; the tenant's id for TENANT
    # Organisation audiences: the Entra tenant (empty: the bot's own, MicrosoftAppTenantId); a USERS
    # list (object ids and user principal names, lower case, each once); whether TENANT includes guests.
    tenant: str = ""
    people: tuple[str, ...] = ()
    include_guests: bool = False
    # A USERS list kept beside its notification (records.store): its length, the list itself elsewhere.
    listed: int = 0

    @property
    def is_single(self) -> bool:
        return self.kind is TargetKind.CONVERSATION

    @property
    def in_organisation(self) -> bool:
        return self.kind in ORGANISATION

    def directory_tenant(self, default: str) -> str:
        """The tenant whose directory the audience is read from."""
        return self.tenant or default

    def without_people(self) -> Target:
        """A USERS target as its notification keeps it: the count, the list stored apart."""
        return Target(self.kind, tenant=self.tenant, listed=len(self.people) or self.listed)

    def to_json(self) -> Any:
        if self.kind is TargetKind.ALL:
            return "all"
        if self.kind is TargetKind.GROUP:
            return {"group": self.value, **({"tenant": self.tenant} if self.tenant else {})}
        if self.kind is TargetKind.USERS:
            people: Any = list(self.people) if self.people or not self.listed else {"listed": self.listed}
            return {"users": people, **({"tenant": self.tenant} if self.tenant else {})}
        if self.kind is TargetKind.TENANT:
            return {"tenant": self.value, **({"includeGuests": True} if self.include_guests else {})}
        # A channel keeps its first name on the wire: an instance of the previous version reads it too.
        return {self.kind.value: self.value}


@dataclass(frozen=True, slots=True)
class Job:
    kind: JobKind
    target: Target
    id: str
    text: str = ""
    locale: str | None = None
    dialog: str = ""
    # Content beyond a plain string `text`, as given on the wire: a localized `text` map,
    # `attachments`, `suggestedActions`, `defaultLocale`. Empty for a text-only message.
    content: dict[str, Any] = field(default_factory=dict)
    not_before: datetime | None = None
    ack_title: str = ""  # empty: no acknowledge button

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"v": VERSION, "kind": self.kind.value, "id": self.id, "to": self.target.to_json()}
        if self.kind is JobKind.MESSAGE:
            if self.text:
                out["text"] = self.text
            out.update(self.content)
            if self.locale:
                out["locale"] = self.locale
        else:
            out["dialog"] = self.dialog
        if self.not_before is not None:
            out["notBefore"] = self.not_before.isoformat()
        if self.ack_title:
            out["ack"] = {"title": self.ack_title}
        return out

    def localized(self) -> LocalizedContent:
        """The message's content, one per locale (or one for all), with the acknowledge button if asked."""
        if not self.content:
            # Plain text was checked against MAX_TEXT_BYTES alone, as before cards existed.
            plain = LocalizedContent({"": Content(self.text)})
        else:
            plain = parse_content({"text": self.text or None, **self.content})
        if not self.ack_title:
            return plain
        return LocalizedContent({key: with_acknowledgement(content, self.id, self.ack_title)
                                 for key, content in plain.by_locale.items()}, plain.default_locale)


def parse_target(value: Any, *, stored: bool = False) -> Target:
    if value == "all":
        return Target(TargetKind.ALL)
    if isinstance(value, dict) and ("group" in value or "users" in value or "tenant" in value):
        return _organisation_target(value, stored=stored)
    if isinstance(value, dict) and len(value) == 1:
        [(key, item)] = value.items()
        if key in TARGET_KEYS and isinstance(item, str) and item:
            return Target(TARGET_KEYS[key], item)
    raise BadInput('to must be {"conversation": id}, {"user": id}, {"channelId": id} (or {"channel": id}), '
                   '{"team": id}, {"teamChannel": id}, {"group": id}, {"users": [...]}, {"tenant": id} or "all"')


def _organisation_target(value: dict[str, Any], *, stored: bool) -> Target:
    """{"group": id}, {"users": [...]} (each with an optional "tenant" beside it), or {"tenant": id}
    (with an optional "includeGuests": true)."""
    from shared_code.protocol.graph import check_object_id, check_person

    kind = "group" if "group" in value else "users" if "users" in value else "tenant"
    allowed = {"tenant", "includeGuests"} if kind == "tenant" else {kind, "tenant"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise BadInput(f"to.{kind} takes {', '.join(sorted(allowed))} beside it, not {', '.join(unknown)}")
    tenant = value.get("tenant")
    if tenant is not None and (not isinstance(tenant, str) or not tenant):
        raise BadInput("to.tenant must be the id of an Entra tenant")
    tenant = limits.identifier(tenant, "to.tenant") if tenant else ""
    if kind == "group":
        return Target(TargetKind.GROUP, check_object_id(value["group"] if isinstance(value["group"], str) else "",
                                                        "to.group"), tenant=tenant)
    if kind == "tenant":
        guests = value.get("includeGuests", False)
        if not isinstance(guests, bool):
            raise BadInput("to.includeGuests must be true or false")
        return Target(TargetKind.TENANT, tenant, tenant=tenant, include_guests=guests)
    people = value["users"]
    if stored and isinstance(people, dict) and isinstance(people.get("listed"), int):
        return Target(TargetKind.USERS, tenant=tenant, listed=people["listed"])
    if not isinstance(people, list) or not people or len(people) > MAX_PEOPLE:
        raise BadInput(f"to.users must be a list of 1 to {MAX_PEOPLE} object ids or user principal names "
                       "(send a longer list as several notifications)")
    if not all(isinstance(p, str) for p in people):
        raise BadInput("each of to.users must be a string: an object id or a user principal name")
    return Target(TargetKind.USERS, tenant=tenant, people=tuple(dict.fromkeys(check_person(p) for p in people)))


def parse_job(data: Any, *, require_version: bool = True, stored: bool = False) -> Job:
    """Validate a job (queue message or HTTP body, or a notification's record: `stored`); BadInput says
    what is wrong."""
    if not isinstance(data, dict):
        raise BadInput("a job must be a JSON object")
    if require_version or "v" in data:
        if not is_version(data.get("v")):
            raise BadInput(f"unknown job version {data.get('v')!r}; this app reads version {VERSION}")
    kind_value = data.get("kind", "dialog" if "dialog" in data else "message")
    try:
        kind = JobKind(kind_value)
    except ValueError:
        raise BadInput(f"unknown job kind {kind_value!r}; expected message or dialog") from None
    target = parse_target(data.get("to"), stored=stored)
    limits.identifier(target.value, f"to.{target.kind.value}")
    job_id = data.get("id")
    if job_id is None:
        job_id = uuid.uuid4().hex
    if not isinstance(job_id, str) or not job_id or len(job_id) > MAX_ID_LENGTH:
        raise BadInput(f"id must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    limits.identifier(job_id, "id", MAX_ID_LENGTH)
    locale = data.get("locale")
    if locale is not None and (not isinstance(locale, str) or len(locale) > limits.MAX_LOCALE_CHARS):
        raise BadInput(f"locale must be a string such as en-US, of at most {limits.MAX_LOCALE_CHARS} characters")
    not_before = parse_not_before(data.get("notBefore"))
    ack_title = parse_ack(data.get("ack"))
    if ack_title and kind is not JobKind.MESSAGE:
        raise BadInput("ack is for messages, not dialogs")
    if kind is JobKind.MESSAGE:
        text = data.get("text")
        content = {name: data[name] for name in CONTENT_FIELDS if data.get(name) is not None}
        if isinstance(text, dict) or content:
            if isinstance(text, dict):
                content = {"text": text, **content}
                text = None
            parse_content({"text": text, **content})  # validates: BadInput says what is wrong
            return _checked(Job(kind, target, job_id, text=text or "", locale=locale or None, content=content,
                                not_before=not_before, ack_title=ack_title))
        if not isinstance(text, str) or not text.strip():
            raise BadInput("text is required (a non-empty string), or attachments")
        if len(text.encode()) > MAX_TEXT_BYTES:
            raise BadInput(f"text is longer than {MAX_TEXT_BYTES} bytes")
        return _checked(Job(kind, target, job_id, text=text, locale=locale or None, not_before=not_before,
                            ack_title=ack_title))
    dialog = data.get("dialog")
    if not isinstance(dialog, str) or dialog not in KNOWN_DIALOGS:
        raise BadInput(f"unknown dialog {dialog!r}; known: {', '.join(sorted(KNOWN_DIALOGS))}")
    return Job(kind, target, job_id, dialog=dialog, locale=locale or None, not_before=not_before)


EDIT_KIND = "edit"
# What an edit may change: the content, nothing else (the audience, ack and schedule stay).
EDITABLE_FIELDS = ("text", *CONTENT_FIELDS)


@dataclass(frozen=True, slots=True)
class EditJob:
    """New content for notification `id`, as given on the wire (the content fields only)."""

    id: str
    changes: dict[str, Any]


def parse_edit(data: Any, *, require_version: bool = True) -> EditJob:
    """Validate an edit (queue message or PATCH body) as far as it can be without the notification."""
    if not isinstance(data, dict):
        raise BadInput("an edit must be a JSON object")
    if require_version or "v" in data:
        if not is_version(data.get("v")):
            raise BadInput(f"unknown job version {data.get('v')!r}; this app reads version {VERSION}")
    job_id = data.get("id")
    if not isinstance(job_id, str) or not job_id or len(job_id) > MAX_ID_LENGTH:
        raise BadInput(f"id must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    limits.identifier(job_id, "id", MAX_ID_LENGTH)
    unknown = sorted(set(data) - {"v", "kind", "id", TRACEPARENT, DELAY, *EDITABLE_FIELDS})
    if unknown:
        raise BadInput(f"an edit changes the content only ({', '.join(EDITABLE_FIELDS)}); not {', '.join(unknown)}")
    changes = {name: data[name] for name in EDITABLE_FIELDS if data.get(name) is not None}
    if "text" not in changes and "attachments" not in changes:
        raise BadInput("an edit needs text or attachments")
    return EditJob(job_id, changes)


def revised(job: Job, changes: dict[str, Any]) -> Job:
    """`job` with its content replaced by `changes`: validated exactly as a new message's content."""
    if job.kind is not JobKind.MESSAGE:
        raise BadInput("only a message can be edited, not a dialog")
    data = {k: v for k, v in job.to_json().items() if k not in EDITABLE_FIELDS}
    return check_storable(parse_job({**data, **changes}))


def parse_ack(value: Any) -> str:
    """`ack`: {"title": "Got it"} (or {} for the default title); the button's title, "" when absent."""
    if value is None:
        return ""
    if not isinstance(value, dict) or set(value) - {"title"}:
        raise BadInput('ack must be {"title": "..."}')
    title = value.get("title", ACK_DEFAULT_TITLE)
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_ACK_TITLE:
        raise BadInput(f"ack.title must be a non-empty string of at most {MAX_ACK_TITLE} characters")
    return title


def _checked(job: Job) -> Job:
    """The button adds to the message: it must still fit (checked here, not at the first send)."""
    if job.ack_title:
        for content in job.localized().by_locale.values():
            check_size(content)
    return job


def parse_not_before(value: Any) -> datetime | None:
    """`notBefore`: an ISO 8601 time with a time zone (a zoneless time would mean the server's zone)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadInput("notBefore must be an ISO 8601 time with a time zone, e.g. 2026-12-01T09:00:00Z")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(f"notBefore {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise BadInput(f"notBefore {value!r} needs a time zone (Z or +hh:mm)")
    return limits.moment(parsed, f"notBefore {value!r}")


def is_version(value: Any) -> bool:
    """The job is version 1: the number 1 (JSON's `true` is not, although Python says True == 1)."""
    return not isinstance(value, bool) and value == VERSION


def check_storable(job: Job) -> Job:
    """A job that is kept (a notification's record) must fit one Table Storage property: a text map of
    many locales, or text that JSON escapes (controls), can pass the per-message limit and still not."""
    kept = replace(job, target=job.target.without_people()) if job.target.people else job  # the list is kept apart
    limits.fitting(json.dumps(kept.to_json(), ensure_ascii=False), "the notification")
    return job


def enqueue(data: dict[str, Any], services: ConversationServices, *, delay_seconds: float = 0, queue_name: str | None = None) -> None:
    """Put a job on the jobs queue, invisible for `delay_seconds` (the serverless setTimeout).

    The job carries the current span's `traceparent` (its notification's trace; plumbing/tracing.py) and its
    `delay`, so the age of a job when picked up counts from when it was due."""
    data = tracing.with_traceparent(data)
    if delay_seconds > 0:
        data = {**data, DELAY: int(round(delay_seconds))}
    queues.send(services.queue(queue_name), data, delay_seconds)


def send_to_poison(original: bytes | str, reason: str, services: ConversationServices, *, queue_name: str | None = None) -> None:
    """Keep a message that can never succeed, with why, in `<queue>-poison`: never dropped."""
    name = f"{queue_name or services.settings.jobs_queue}-poison"
    body = original.decode("utf-8", "replace") if isinstance(original, bytes) else original
    queues.send(services.queue(name), {"reason": reason, "message": body})
