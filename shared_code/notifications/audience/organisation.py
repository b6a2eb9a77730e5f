"""The organisation's audiences, read from Microsoft Graph a page at a time: an Entra group's users
(nested groups included), a list of people, the tenant's enabled users.

Each person is a recipient `("msteams", <Entra object id>)`: a person, not a conversation, as a team's
member is. The page job finds their personal chat with the bot (storage.people), or has the app
installed for them first (sending.reach). A scan job reads one Graph page (`@odata.nextLink`, kept
as the scan's continuation `{"graph": link}`), or one part of a `users` list kept beside the
notification (`{"people": index}`), and leaves out anyone an earlier page listed (member_index), so
a person in two nested groups, or twice in a list, gets one message.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared_code.notifications.audience import member_index
from shared_code.notifications.jobs import Target, TargetKind
from shared_code.notifications.records.ledger import RecipientKey
from shared_code.notifications.records.store import PEOPLE_PER_ROW, Notification, NotificationState
from shared_code.plumbing.errors import BadInput, ConfigError, Throttled
from shared_code.protocol.graph import (
    MAX_PAGE_SIZE,
    DirectoryPage,
    DirectoryUser,
    GraphClient,
    PermissionMissing,
    is_object_id,
)

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices
    from shared_code.plumbing.settings import Settings
    from shared_code.storage.addresses import Address

log = logging.getLogger(__name__)

TEAMS = "msteams"  # the channel of every person of the organisation
READ_TRIES = 5  # a throttled directory read is tried again this often before the scan job is retried


def directory_tenant(target: Target, settings: Settings) -> str:
    """The tenant of an organisation audience: named beside it, else the bot's (MicrosoftAppTenantId).
    A deployed bot must know one; in local mode the directory is the stub's and needs none."""
    tenant = target.directory_tenant(settings.microsoft_app_tenant_id)
    if not tenant and not settings.local_mode:
        raise BadInput(f'to.{target.kind.value} needs a tenant: name it ("tenant" beside it) or set MicrosoftAppTenantId')
    return tenant


def person_key(object_id_or_upn: str) -> RecipientKey:
    return RecipientKey(TEAMS, object_id_or_upn)


def read_page(notification: Notification, continuation: dict[str, Any] | None, page_id: str,
              services: NotificationServices) -> tuple[list[RecipientKey], dict[str, Any] | None]:
    """One page of the audience: its people (first listings only) and the continuation, None after the last.
    Graph refusing the app a permission stops the notification with the reason, and raises (the scan job
    goes to poison: no retry can grant it)."""
    try:
        users, following = _read(notification, continuation, services)
    except PermissionMissing as missing:
        services.notifications.stop(notification.id, NotificationState.STOPPED, f"{missing.code}: {missing.message}")
        log.error("notification %s stopped: %s", notification.id, missing.message)
        raise
    keys = member_index.first_listings(services.notifications.table, notification.id, page_id,
                                       [person_key(u) for u in users])
    return keys, following


def _read(notification: Notification, continuation: dict[str, Any] | None,
          services: NotificationServices) -> tuple[list[str], dict[str, Any] | None]:
    target = notification.job.target
    graph = services.graph(directory_tenant(target, services.settings))
    size = services.settings.broadcast_page_size
    if target.kind is TargetKind.USERS:
        index = int((continuation or {}).get("people", 0))
        listed = services.notifications.people(notification.id, index) or []
        more = (index + 1) * PEOPLE_PER_ROW < target.listed
        return [_object_id(person, graph) for person in listed], ({"people": index + 1} if more else None)
    link = (continuation or {}).get("graph")
    if link is not None and not isinstance(link, str):
        raise BadInput("a scan's continuation names a Graph link")
    page = directory_page(target, graph, link, page_size=size)
    return [u.id for u in page.users], ({"graph": page.next_link} if page.next_link else None)


def directory_page(target: Target, graph: GraphClient, link: str | None, *, page_size: int = MAX_PAGE_SIZE) -> DirectoryPage:
    """One page of a group's or the tenant's users (the first when `link` is None), throttling waited out."""
    if target.kind is TargetKind.GROUP:
        return with_retries(lambda: graph.group_users(target.value, next_link=link, page_size=page_size))
    if target.kind is TargetKind.TENANT:
        return with_retries(lambda: graph.tenant_users(include_guests=target.include_guests, next_link=link,
                                                       page_size=page_size))
    raise ConfigError(f"not a directory audience: {target.kind.value}")


def listed_user(person: str, graph: GraphClient) -> DirectoryUser | None:
    """A listed person as the directory knows them: an object id as it is, a user principal name looked up
    (one Graph read); None when the directory has no such name."""
    if is_object_id(person):
        return DirectoryUser(person)
    return with_retries(lambda: graph.user(person))


def personal_chats(tenant: str, object_ids: list[str], services: NotificationServices) -> dict[str, Address]:
    """The saved personal addresses of those people who have one, by object id: the People index, then the
    addresses (a query per 15 people and a range query per channel; no Graph call)."""
    chats = services.people.find(tenant, [o for o in object_ids if is_object_id(o)])
    addresses = services.addresses.get_many((c.channel_id, c.conversation_id) for c in chats.values())
    found = ((object_id, addresses.get((chat.channel_id, chat.conversation_id))) for object_id, chat in chats.items())
    return {object_id: address for object_id, address in found if address is not None}


def _object_id(person: str, graph: GraphClient) -> str:
    """A listed person's object id; one the directory does not know stays as given: its page job records it
    as `user_not_found`."""
    found = listed_user(person, graph)
    return found.id if found is not None else person


def with_retries(call: Callable[[], Any], *, tries: int = READ_TRIES, sleep: Callable[[float], None] = time.sleep) -> Any:
    """A directory read, tried again after Graph's Retry-After (or a backoff with jitter) when it throttles;
    past `tries`, Throttled reaches the queue, which runs the scan job again later."""
    for attempt in range(tries):
        try:
            return call()
        except Throttled as throttled:
            if attempt == tries - 1:
                raise
            wait = throttled.retry_after if throttled.retry_after is not None else min(8.0, 0.5 * 2 ** attempt)
            sleep(wait * (1 + random.random() / 10))
    raise AssertionError("unreachable")
