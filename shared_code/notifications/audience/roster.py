"""Team rosters: a saved team's members a page at a time, and each member's personal address.

The building blocks of a `team` audience: the fan-out reads one roster page per scan job and,
for each member, sends to the address `personal_address` gives (the member's saved 1:1, or a new
one created with the team's tenant and saved, so the next broadcast creates nothing).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared_code.plumbing.errors import NotFound, RecipientGone
from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference
from shared_code.protocol.connector import MAX_PAGE_SIZE, RosterMember
from shared_code.storage.addresses import Address
from shared_code.storage.teams import Team

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices

PERSONAL = "personal"


@dataclass(frozen=True, slots=True)
class RosterPage:
    team: Team
    members: tuple[RosterMember, ...]
    continuation: str | None  # the connector's token for the next page; None after the last


def installed_team(team_id: str, services: NotificationServices) -> Team:
    """The saved team: NotFound (404) if never saved, RecipientGone (410) once the bot left it."""
    team = services.teams.get(team_id)
    if team is None:
        raise NotFound("no saved team with that id (GET /api/teams lists them)")
    if not team.installed:
        raise RecipientGone("the bot is no longer installed in that team", code="team_uninstalled")
    return team


def read_page(
    team_id: str, services: NotificationServices, *, continuation: str | None = None, page_size: int = MAX_PAGE_SIZE
) -> RosterPage:
    """One page of the team's current members (pagedmembers, `page_size` clamped to 50..500 by the client).
    A team whose roster the bot can no longer read (403/404: uninstalled meanwhile) raises RecipientGone."""
    team = installed_team(team_id, services)
    page = services.connector.paged_members(
        team.service_url, team.id, page_size, continuation, trusted=team.service_url_trusted, retries=2
    )
    return RosterPage(team, page.members, page.continuation)


def saved_personal_addresses(members: Iterable[RosterMember], team: Team, services: NotificationServices) -> dict[str, Address]:
    """The saved personal addresses of `members` in the team's channel, by member id: an active one
    when there is, else the inactive one (a member who blocked the bot is not asked again)."""
    found: dict[str, Address] = {}
    for user_id, addresses in services.addresses.find_by_users([m.id for m in members]).items():
        mine = [a for a in addresses if a.channel_id == team.root.channel_id and a.scope == PERSONAL]
        if mine:
            found[user_id] = max(mine, key=lambda a: a.active)
    return found


def personal_address(
    member: RosterMember, team: Team, services: NotificationServices, *, saved: dict[str, Address] | None = None,
    retries: int = 2,
) -> Address:
    """The member's personal address: the saved one (from `saved`, or looked up), else a 1:1 created
    now (POST /v3/conversations with the team's tenant), saved as the member's address and returned.
    Creating counts against the channel's limits as a send does: Throttled/Upstream reach the caller
    (after `retries`; a caller that paces each call itself passes 0)."""
    known = saved if saved is not None else saved_personal_addresses([member], team, services)
    if member.id in known:
        return known[member.id]
    tenant_id = team.tenant_id or member.tenant_id
    conversation_id = services.connector.create_personal_conversation(
        team.service_url, team.root.bot.id, member.id, tenant_id, trusted=team.service_url_trusted, retries=retries
    )
    reference = ConversationReference(
        channel_id=team.root.channel_id,
        service_url=team.service_url,
        conversation=ConversationAccount(conversation_id, conversation_type=PERSONAL, tenant_id=tenant_id),
        user=ChannelAccount(member.id, member.name, member.aad_object_id),
        bot=team.root.bot,
        locale=team.root.locale,
        tenant_id=tenant_id,
    )
    services.addresses.save(reference, trusted=team.service_url_trusted)
    return Address(reference, service_url_trusted=team.service_url_trusted)


@dataclass(frozen=True, slots=True)
class TeamMembers:
    """What a page job of a team broadcast knows of its members: the team, and their saved personal
    addresses by member id. A member without one gets a 1:1 created at their turn (`create`)."""

    team: Team
    saved: dict[str, Address]

    def address(self, member_id: str) -> Address | None:
        return self.saved.get(member_id)

    def pacing_address(self, member_id: str) -> Address:
        """Where creating the member's chat is paced: the team's tenant and serviceUrl, and a key of
        the member's own (no saved conversation has a member id as its id), for the per-conversation limits."""
        root = self.team.root
        tenant_id = self.team.tenant_id or root.tenant_id
        reference = ConversationReference(
            channel_id=root.channel_id, service_url=root.service_url,
            conversation=ConversationAccount(member_id, conversation_type=PERSONAL, tenant_id=tenant_id),
            user=ChannelAccount(member_id), bot=root.bot, locale=root.locale, tenant_id=tenant_id)
        return Address(reference, service_url_trusted=self.team.service_url_trusted)

    def create(self, member_id: str, services: NotificationServices) -> Address:
        """The member's 1:1, created with the team's tenant and saved (Throttled/Upstream/RecipientGone as
        the connector raises them: the caller paces and retries, so the connector does not)."""
        return personal_address(RosterMember(member_id), self.team, services, saved={}, retries=0)


def team_members(team_id: str, member_ids: Iterable[str], services: NotificationServices) -> TeamMembers:
    """The team (even if the bot left it since: members keep their personal chats) and the saved
    personal addresses of `member_ids`. NotFound for a team never saved."""
    team = services.teams.get(team_id)
    if team is None:
        raise NotFound("no saved team with that id (GET /api/teams lists them)")
    return TeamMembers(team, saved_personal_addresses([RosterMember(m) for m in member_ids], team, services))
