"""The notify API: send now to one conversation, or start a notification to many and report on it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from azure.core.exceptions import HttpResponseError

from shared_code.conversation.proactive import send_localized
from shared_code.notifications.after_send import edits
from shared_code.notifications.audience import fanout
from shared_code.notifications.audience.organisation import directory_tenant
from shared_code.notifications.audience.preview import preview
from shared_code.notifications.audience.roster import installed_team
from shared_code.notifications.jobs import (
    MAX_ID_LENGTH,
    Job,
    JobKind,
    Target,
    TargetKind,
    check_storable,
    parse_edit,
    parse_job,
)
from shared_code.notifications.records.catalogue import Action, Actor, summary_of
from shared_code.notifications.records.ledger import DeliveryState, RecipientKey
from shared_code.notifications.records.store import Notification, NotificationState, Status, counts_of, payload_hash
from shared_code.plumbing import limits, tracing
from shared_code.plumbing.errors import AppError, BadInput, Conflict, NotFound
from shared_code.storage.addresses import Address

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]


def route(method: str, notification_id: str, action: str, read_body: Callable[[], dict[str, Any]],
          services: NotificationServices, *, query: Mapping[str, str], request_url: str = "") -> Answer:
    """/api/notify[/{id}[/recall]] with a function key: which of the calls below a request is (the CSV reports
    are the adapter's: they answer with a file)."""
    if method == "POST" and not notification_id:
        return traced_notify(read_body, services, request_url=request_url)
    if method == "GET" and not notification_id:
        return list_notifications(services, query)
    if method == "GET" and notification_id and not action:
        return status(notification_id, services)
    if method == "DELETE" and notification_id and not action:
        return cancel(notification_id, services)
    if method == "PATCH" and notification_id and not action:
        return edit(notification_id, read_body(), services)
    if method == "POST" and notification_id and action == "recall":
        return recall(notification_id, services)
    raise BadInput("use POST or GET /api/notify, GET, PATCH or DELETE /api/notify/{id}, POST .../recall, "
                   "GET .../report or .../audit")


def traced_notify(read_body: Callable[[], dict[str, Any]], services: NotificationServices, *, request_url: str = "",
                  actor: Actor | None = None) -> Answer:
    """`notify` in a span that starts the notification's trace (its queue jobs carry it on)."""
    with tracing.span(tracing.NOTIFY, {"http.request.method": "POST"}) as span:
        answer = notify(read_body(), services, request_url=request_url, actor=actor)
        span.set({tracing.NOTIFICATION_ID: answer.body.get("id"), "http.response.status_code": answer.status})
    return answer


def find_address(conversation_id: str, services: NotificationServices) -> Address:
    address = services.addresses.get(conversation_id)
    if address is None:
        raise NotFound("no saved address for that conversation")
    return address


def notify(data: dict[str, Any], services: NotificationServices, *, request_url: str = "",
           actor: Actor | None = None) -> Answer:
    """POST /api/notify. One conversation and a message: sent now (200 with the activity id).
    One conversation and a dialog: started now (200 with {"started": bool}). Anything else, and
    anything with `notBefore`: a notification, idempotent on the caller's `id`, on the queue (202).
    `"dryRun": true`: nothing is sent or stored; 200 with how many it would reach and a sample.
    `actor` (a function key's service when None) is kept in the catalogue as the notification's author."""
    actor = actor or Actor.service()
    dry_run = data.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise BadInput("dryRun must be true or false")
    job = parse_job({k: v for k, v in data.items() if k != "dryRun"}, require_version=False)
    job = resolve_team_target(job, services)
    if dry_run:
        return Answer(200, preview(job, services))
    at_once = job.target.is_single and job.not_before is None
    if at_once and job.kind is JobKind.MESSAGE:
        address = find_address(job.target.value, services)
        named = "id" in data
        activity_id = _already_sent(job, address, services) if named else None
        if activity_id is None:
            activity_id = send_localized(address, job.localized(), services, locale=job.locale)
            _record_single(job if named else replace(job, id=activity_id or job.id), address, activity_id, services,
                           actor)
        return Answer(200, {"id": activity_id, "conversation": address.conversation_id})
    if at_once and job.kind is JobKind.DIALOG:
        return Answer(200, start_dialog(job, services))
    _check_target_exists(job, services)
    notification, created = fanout.start(check_storable(job), services, actor=actor)
    base = _base_url(request_url, services)
    return Answer(202, {"id": notification.id, "status": f"{base}/api/notify/{quote(notification.id, safe='')}",
                        "created": created})


SINGLE_PAGE = "0"


def _already_sent(job: Job, address: Address, services: NotificationServices) -> str | None:
    """A single send whose caller id names a notification already sent there: its activity id (nothing is
    sent again). The same id with other content is a Conflict (409), as for a broadcast."""
    existing = services.notifications.get(job.id)
    if existing is None:
        return None
    if existing.payload_hash != payload_hash(job):
        raise Conflict(f"notification id {job.id!r} was already used for a different notification")
    record = services.ledger.get(job.id, SINGLE_PAGE, RecipientKey(address.channel_id, address.conversation_id))
    return record.activity_id if record is not None and record.state is DeliveryState.SENT else None


def _record_single(job: Job, address: Address, activity_id: str, services: NotificationServices,
                   actor: Actor) -> None:
    """Keep a single send as a one-recipient notification with its ledger row, so it can be edited or recalled
    like a broadcast: named by the caller's id, else by the activity id the answer carries. Five table writes.
    The message is out: a failure to record it is logged, never the caller's error."""
    store, key = services.notifications, RecipientKey(address.channel_id, address.conversation_id)
    try:
        notification, _ = store.create(check_storable(job))
        services.catalogue.add(job.id, notification.created_at or services.clock(), actor, summary_of(job))
        page = store.claim_page(job.id, SINGLE_PAGE, [key], None)
        record = services.ledger.record_sent(job.id, SINGLE_PAGE, key, activity_id)
        store.mark_scan_done(job.id)
        store.save_counts(job.id, SINGLE_PAGE, lambda: counts_of([record]), read=page)
    except (AppError, HttpResponseError) as error:
        log.warning("single send to %s not recorded as notification %r: %s", address.channel_id, job.id,
                    type(error).__name__)


def start_dialog(job: Job, services: NotificationServices) -> dict[str, Any]:
    """Start a dialog (the survey) in one saved conversation now: {"started": false} when it
    was already running there, or this request's "id" was already applied."""
    from shared_code.conversation.dialogs import begin_dialog

    address = find_address(job.target.value, services)
    return {"started": begin_dialog(address, job.dialog, job.id, services)}


def status(notification_id: str, services: NotificationServices) -> Answer:
    """GET /api/notify/{id}: exact counts, summed over the page summaries (never the deliveries), and who
    created and changed it (the catalogue's row: one read more)."""
    limits.identifier(notification_id, "id", MAX_ID_LENGTH)
    found = services.notifications.status(notification_id)
    if found is None:
        raise NotFound("no notification with that id")
    return Answer(200, _status_json(found, services))


def _status_json(found: Status, services: NotificationServices) -> dict[str, Any]:
    acks, notification = services.acknowledgements, found.notification
    body = {**found.to_json(), "acknowledged": acks.count(notification.id),
            "reactions": acks.reaction_count(notification.id), "read": services.reads.count(notification.id)}
    entry = services.catalogue.get(notification.id, notification.created_at) if notification.created_at else None
    if entry is not None:
        body.update({"createdBy": entry.created_by.to_json(), "summary": entry.summary, "audit": list(entry.audit)})
    return body


def created_by(notification_id: str, services: NotificationServices) -> str | None:
    """Who created it: their Entra object id, "" for a service, None when it predates the catalogue. Two point
    reads; NotFound for an unknown id."""
    limits.identifier(notification_id, "id", MAX_ID_LENGTH)
    notification = services.notifications.get(notification_id)
    if notification is None:
        raise NotFound("no notification with that id")
    entry = services.catalogue.get(notification.id, notification.created_at) if notification.created_at else None
    return entry.created_by.id if entry is not None else None


def cancel(notification_id: str, services: NotificationServices, *, actor: Actor | None = None) -> Answer:
    """DELETE /api/notify/{id}: stop what has not been sent yet (page jobs check before sending)."""
    limits.identifier(notification_id, "id", MAX_ID_LENGTH)
    notification = services.notifications.get(notification_id)
    if notification is None:
        raise NotFound("no notification with that id")
    services.notifications.stop(notification_id, NotificationState.CANCELLED, "cancelled by the caller")
    _audit(notification, Action.CANCELLED, actor, services)
    return status(notification_id, services)


def edit(notification_id: str, data: dict[str, Any], services: NotificationServices, *,
         actor: Actor | None = None) -> Answer:
    """PATCH /api/notify/{id}: new content for a notification; every delivered message is updated through
    the queue, and whoever is not sent yet gets it. 202 with the status; 404 unknown, 409 recalled, 400 bad."""
    limits.identifier(notification_id, "id", MAX_ID_LENGTH)
    if "id" in data and data["id"] != notification_id:
        raise BadInput("the body's id, if given, must be the notification's")
    change = parse_edit({**data, "id": notification_id}, require_version=False)
    edits.edit(change, services)
    _audit(services.notifications.get(notification_id), Action.EDITED, actor, services)
    return Answer(202, status(notification_id, services).body)


def recall(notification_id: str, services: NotificationServices, *, actor: Actor | None = None) -> Answer:
    """POST /api/notify/{id}/recall: stop what has not been sent and delete every delivered message. 202."""
    limits.identifier(notification_id, "id", MAX_ID_LENGTH)
    edits.recall(notification_id, services)
    _audit(services.notifications.get(notification_id), Action.RECALLED, actor, services)
    return Answer(202, status(notification_id, services).body)


def _audit(notification: Notification | None, action: Action, actor: Actor | None,
           services: NotificationServices) -> None:
    if notification is not None and notification.created_at is not None:
        services.catalogue.record(notification.id, notification.created_at, action, actor or Actor.service(),
                                  services.clock())


LIST_LIMIT = 100  # notifications in one answer of GET /api/notify
LIST_SCAN = 500  # catalogue rows read at most for one answer, when a state filter skips many


def list_notifications(services: NotificationServices, query: Mapping[str, str], *,
                       author_id: str | None = None) -> Answer:
    """GET /api/notify?limit=&after=&state=&author=: the newest notifications first, each with its status,
    `limit` (20) at a time; `next` is the `after` of the following page (absent on the last). `state` keeps one
    state (running, scheduled, done, stopped, cancelled), `author` (or `author_id`, which wins) one author's: an
    Entra object id, "" for services'. A page costs a catalogue query and a status query per notification;
    each item is that status without the responses and the audit trail (GET /api/notify/{id} has them)."""
    try:
        limit = int(query.get("limit") or 20)
    except ValueError:
        raise BadInput("limit must be a number") from None
    after, state = query.get("after") or "", query.get("state") or ""
    if author_id is None:
        author_id = query.get("author")
    if not 1 <= limit <= LIST_LIMIT:
        raise BadInput(f"limit must be between 1 and {LIST_LIMIT}")
    if state and state not in {s.value for s in NotificationState}:
        raise BadInput("state must be one of " + ", ".join(s.value for s in NotificationState))
    if after and (len(after) > 600 or not after.replace(".", "").replace("-", "").replace("_", "").isalnum()):
        raise BadInput("after must be the `next` of a previous answer")
    items: list[dict[str, Any]] = []
    last, scanned, more = after, 0, False
    for entry in services.catalogue.newest(after=after, author_id=author_id, page_size=min(LIST_SCAN, limit * 2)):
        if len(items) == limit or scanned == LIST_SCAN:
            more = True
            break
        scanned += 1
        last = entry.row_key
        found = services.notifications.status(entry.notification_id)
        if found is None or (state and found.state.value != state):
            continue
        # The counts and who made it; the responses (acknowledged, reactions, read) and the trail are on the
        # notification's own status: one table query per notification listed, not five.
        items.append({**found.to_json(), "createdBy": entry.created_by.to_json(), "summary": entry.summary})
    body: dict[str, Any] = {"notifications": items}
    if more:
        body["next"] = last
    return Answer(200, body)


def resolve_team_target(job: Job, services: NotificationServices) -> Job:
    """A Teams audience in terms the rest of the app knows. `teamChannel` becomes the team's root
    channel conversation (one conversation, sent as any other: at once over HTTP, through the ledger
    from the queue); 404 for a team never saved, 410 once the bot was uninstalled from it.
    `team` (every member) stays as it is, for the fan-out to read the roster; the same 404 and 410."""
    if job.target.kind is TargetKind.TEAM:
        installed_team(job.target.value, services)
        return job
    if job.target.in_organisation:
        directory_tenant(job.target, services.settings)  # 400 when no tenant is known
        return job
    if job.target.kind is not TargetKind.TEAM_CHANNEL:
        return job
    team = installed_team(job.target.value, services)
    root = team.root
    if services.addresses.get(root.conversation.id, root.channel_id) is None:
        # Saved by a rename or before the root channel's address was: the team knows where its channel is.
        services.addresses.save(root, trusted=team.service_url_trusted, team_id=team.id)
    return replace(job, target=Target(TargetKind.CONVERSATION, root.conversation.id))


def teams(services: NotificationServices) -> Answer:
    """GET /api/teams: the teams the bot is or was installed in, so an operator can find an id."""
    return Answer(200, {"teams": [team.to_json() for team in services.teams.list()]})


def _check_target_exists(job: Job, services: NotificationServices) -> None:
    if job.target.kind is TargetKind.CONVERSATION:
        find_address(job.target.value, services)
    elif job.target.kind is TargetKind.USER and not services.addresses.find_by_user(job.target.value):
        raise NotFound("no saved address for that user")


def _base_url(request_url: str, services: NotificationServices) -> str:
    parts = urlsplit(request_url)
    if parts.scheme and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return services.settings.public_base_url.rstrip("/")


__all__ = ["Answer", "cancel", "created_by", "edit", "list_notifications", "notify", "recall", "resolve_team_target", "status",
           "teams"]
