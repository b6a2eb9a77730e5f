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
