"""Audience preview: how many recipients a notification would reach, and a few of them, without sending
or storing anything. Counts with the same address queries as the fan-out, a page at a time."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shared_code.notifications.jobs import Job, TargetKind
from shared_code.plumbing.errors import NotFound
from shared_code.storage.addresses import Address

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices

SAMPLE_SIZE = 5
COUNT_PAGE_SIZE = 1000


def preview(job: Job, services: NotificationServices) -> dict[str, Any]:
    """{"dryRun": true, "recipients": n, "sample": [...]} for `job`'s audience as a broadcast would see it now:
    active addresses only, and not those unseen for AddressMaxIdleDays."""
    if job.target.kind is TargetKind.TEAM:
        return _team_preview(job, services)
    if job.target.in_organisation:
        return _organisation_preview(job, services)
    count, sample = 0, []
    for address in _audience(job, services):
        count += 1
        if len(sample) < SAMPLE_SIZE:
            sample.append(_sample(address))
    if count == 0 and job.target.kind is TargetKind.CONVERSATION:
        raise NotFound("no active saved address for that conversation")
    return {"dryRun": True, "to": job.target.to_json(), "recipients": count, "sample": sample}


def _audience(job: Job, services: NotificationServices):  # noqa: ANN202 - an iterator of Address
    target = job.target
    if target.kind is TargetKind.CONVERSATION:
        address = services.addresses.get(target.value)
        yield from ([address] if address is not None and address.active else [])
        return
    if target.kind is TargetKind.USER:
        yield from (a for a in services.addresses.find_by_user(target.value) if a.active)
        return
    idle_days = services.settings.address_max_idle_days
    seen_since = services.clock() - timedelta(days=idle_days) if idle_days else None
    yield from services.addresses.iter_active(
        page_size=COUNT_PAGE_SIZE, channel_id=target.value if target.kind is TargetKind.CHANNEL else None,
        seen_since=seen_since)


def _sample(address: Address) -> dict[str, Any]:
    ref = address.reference
    return {"channel": ref.channel_id, "conversation": ref.conversation.id, "user": ref.user.id,
            "userName": ref.user.name, "locale": ref.locale}


def _team_preview(job: Job, services: NotificationServices) -> dict[str, Any]:
    """A team's audience is its current roster (read page by page; no chat is created by a preview)."""
    from shared_code.notifications.audience.roster import read_page

    members: dict[str, Any] = {}
    token: str | None = None
    while True:
        page = read_page(job.target.value, services, continuation=token)
        members.update((m.id, m) for m in page.members)
        if page.continuation is None:
            break
        token = page.continuation
    sample = [{"channel": page.team.root.channel_id, "user": m.id, "userName": m.name}
              for m in list(members.values())[:SAMPLE_SIZE]]
    return {"dryRun": True, "to": job.target.to_json(), "recipients": len(members), "sample": sample}


def _organisation_preview(job: Job, services: NotificationServices) -> dict[str, Any]:
    """An organisation audience read from Graph page by page (as the fan-out will), each person once:
    how many already have a chat with the bot (sent to at once, no Graph call), how many need the app
    installed first, and how many cannot be reached, by why (they blocked the bot, or the directory
    does not know a listed name). Graph's own refusals (policy, licence) are only known by trying."""
    from shared_code.notifications.audience.organisation import (
        directory_page,
        directory_tenant,
        listed_user,
        personal_chats,
    )
    from shared_code.protocol.graph import DirectoryUser

    target = job.target
    tenant = directory_tenant(target, services.settings)
    graph = services.graph(tenant)
    seen: dict[str, DirectoryUser] = {}
    unreachable: dict[str, int] = {}
    if target.kind is TargetKind.USERS:
        for person in target.people:
            user = listed_user(person, graph)
            if user is None:
                unreachable["user_not_found"] = unreachable.get("user_not_found", 0) + 1
            else:
                seen.setdefault(user.id, user)
    else:
        link: str | None = None
        while True:
            page = directory_page(target, graph, link)
            seen.update((u.id, u) for u in page.users if u.id not in seen)
            if page.next_link is None:
                break
            link = page.next_link
    known = 0
    ids = list(seen)
    for start in range(0, len(ids), COUNT_PAGE_SIZE):
        for address in personal_chats(tenant, ids[start:start + COUNT_PAGE_SIZE], services).values():
            if address.active:
                known += 1
            else:
                reason = address.inactive_reason or "address_inactive"
                unreachable[reason] = unreachable.get(reason, 0) + 1
    blocked = sum(v for k, v in unreachable.items() if k != "user_not_found")
    sample = [{"user": u.id, "userPrincipalName": u.upn, "userName": u.name} for u in list(seen.values())[:SAMPLE_SIZE]]
    return {"dryRun": True, "to": target.to_json() if not target.people else {"users": len(target.people)},
            "recipients": len(seen) - blocked, "withChat": known, "toInstall": len(seen) - known - blocked,
            "unreachable": unreachable, "sample": sample}
