"""Reaching a person of the organisation who has no chat with the bot yet, through Microsoft Graph.

For a claimed recipient at `Step.INSTALL` or `Step.CHAT` (records.ledger): install the bot's Teams app
for the person (409: it already was), find the installation and its chat, save the chat as the
person's personal address, then hand the recipient back to the page's usual send. Each step is
recorded on the claim before the next begins, so a host that dies resumes there; each Graph call
waits for a slot of its kind's shared budget (GraphPacer), and a throttled call is never the
person's failure: it is paced and tried again, or put back uncounted.

Teams then posts the bot a `conversationUpdate` for the installation: it carries the same chat id,
so it refreshes the very row saved here (and sends nothing: the page's ledger is what sends).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared_code.notifications.audience.organisation import directory_tenant, personal_chats
from shared_code.notifications.records.ledger import Delivery, DeliveryState, Finish, RecipientKey, Step
from shared_code.notifications.sending.pacing import GraphPacer
from shared_code.plumbing.errors import AppRejected, BadInput, ConfigError, NotFound, Throttled, Upstream
from shared_code.protocol.activity import ChannelAccount, ConversationAccount, ConversationReference
from shared_code.protocol.graph import CallKind, InstallRefused, is_object_id
from shared_code.storage.addresses import Address

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices
    from shared_code.notifications.records.store import Notification

log = logging.getLogger(__name__)

PERSONAL = "personal"

# The app's id in each tenant's catalog, looked up once per process (TeamsAppCatalogId saves the look-up).
_catalog_ids: dict[tuple[str, str], str] = {}
_catalog_lock = threading.Lock()


@dataclass(slots=True)
class Organisation:
    """What a page job of an organisation audience knows: the tenant, where its chats live, and the
    personal addresses its people already have, by object id."""

    tenant: str
    service_url: str
    service_url_trusted: bool
    known: dict[str, Address] = field(default_factory=dict)

    def address(self, object_id: str) -> Address | None:
        return self.known.get(object_id)

    def pacing_address(self, object_id: str, bot_id: str) -> Address:
        """Where the person's messages count (the tenant's budget and permits) before their chat exists."""
        reference = ConversationReference(
            channel_id="msteams", service_url=self.service_url,
            conversation=ConversationAccount(object_id, conversation_type=PERSONAL, tenant_id=self.tenant),
            user=ChannelAccount(object_id, aad_object_id=object_id), bot=ChannelAccount(bot_id), tenant_id=self.tenant)
        return Address(reference, service_url_trusted=self.service_url_trusted)


def organisation(notification: Notification, keys: list[RecipientKey] | tuple[RecipientKey, ...],
                 services: NotificationServices) -> Organisation:
    """The page's people who already have a personal chat (two table queries per 15 people at most, no Graph
    call), and the tenant's serviceUrl: the one an authenticated activity of the tenant brought, else
    TeamsServiceUrl."""
    settings = services.settings
    tenant = directory_tenant(notification.job.target, settings)
    seen = services.people.service_url(tenant)
    return Organisation(tenant, seen or settings.teams_service_url, service_url_trusted=True,
                        known=personal_chats(tenant, [k.conversation_id for k in keys], services))


def bot_id(services: NotificationServices) -> str:
    return f"28:{services.settings.microsoft_app_id or 'local-bot'}"


def catalog_id(tenant: str, services: NotificationServices) -> str:
    """TeamsAppCatalogId, else the org catalog's id for the app whose manifest id is MicrosoftAppId."""
    settings = services.settings
    if settings.teams_app_catalog_id:
        return settings.teams_app_catalog_id
    key = (settings.graph_base_url, tenant)
    found = _catalog_ids.get(key)
    if found is None:
        if settings.local_mode:
            raise ConfigError("set TeamsAppCatalogId: in local mode there is no app id to look the app up by")
        found = services.graph(tenant).catalog_id(settings.microsoft_app_id)
        if found is None:
            raise AppRejected("the bot's Teams app is not in the org catalog: publish dist/teams-app.zip there "
                              "(README, \"Reaching the whole organisation\") or set TeamsAppCatalogId",
                              code="teams_app_not_published")
        with _catalog_lock:
            _catalog_ids[key] = found
    return found


def reach(claimed: Delivery, org: Organisation, services: NotificationServices, *, notification_id: str, page: str,
          pacer: GraphPacer) -> tuple[Delivery, Address] | Finish:
    """Take a claimed person from their step to a saved personal address: (the claim, now at Step.SEND,
    and the address) to send to, or the Finish that ends this try (skipped, retried, failed).
    Raises AppRejected (a permission missing, the app not published): the broadcast stops."""
    settings, ledger = services.settings, services.ledger
    object_id = claimed.key.conversation_id
    if not is_object_id(object_id):
        return Finish(claimed, DeliveryState.INACTIVE, "user_not_found", "the directory has no such user")
    graph = services.graph(org.tenant)
    step = claimed.step
    kind = CallKind.INSTALL
    while True:
        try:
            catalog = catalog_id(org.tenant, services)
            if step is Step.INSTALL:
                kind = CallKind.INSTALL
                services.people.note_install(org.tenant, object_id)
                pacer.acquire(kind, org.tenant)
                graph.install(object_id, catalog)
                advanced = ledger.advance(notification_id, page, claimed, Step.CHAT)
                if advanced is None:
                    return _lost(claimed)
                claimed, step = advanced, Step.CHAT
            kind = CallKind.INSTALLED_APPS
            pacer.acquire(kind, org.tenant)
            installation = graph.installation_id(object_id, catalog)
            if installation is None:  # Graph shows an install a moment after it answered: look again later
                return _retry(claimed, settings.send_max_attempts, "installation_pending",
                              "the app's installation is not visible yet")
            pacer.acquire(kind, org.tenant)
            chat = graph.chat_id(object_id, installation)
            address = _save_address(object_id, chat, org, services)
            advanced = ledger.advance(notification_id, page, claimed, Step.SEND)
            if advanced is None:
                return _lost(claimed)
            return advanced, address
        except Throttled as throttled:
            wait = pacer.throttled(kind, org.tenant, throttled.retry_after, status=throttled.status)
            if time.time() + wait < claimed.claimed_at + settings.delivery_lease_seconds / 3:
                continue
            return Finish(claimed, DeliveryState.RETRY, "graph_throttled", throttled.message, counted=False,
                          retry_after=wait)
        except InstallRefused as refused:
            return Finish(claimed, DeliveryState.INACTIVE, refused.code, refused.message)
        except NotFound as missing:
            return Finish(claimed, DeliveryState.INACTIVE, "user_not_found", missing.message)
        except Upstream as error:
            if not error.transient:
                return Finish(claimed, DeliveryState.FAILED, error.code, error.message)
            return _retry(claimed, settings.send_max_attempts, error.code, error.message)
        except BadInput as bad:
            return Finish(claimed, DeliveryState.FAILED, bad.code, bad.message)


def _save_address(object_id: str, chat: str, org: Organisation, services: NotificationServices) -> Address:
    """The person's personal address: the row Teams' conversationUpdate already saved for this chat, if it
    came first (it knows more: the user's Teams id, the locale), else a new one, indexed by object id."""
    saved = services.addresses.get(chat, "msteams")
    if saved is not None:
        return saved
    reference = ConversationReference(
        channel_id="msteams", service_url=org.service_url,
        conversation=ConversationAccount(chat, conversation_type=PERSONAL, tenant_id=org.tenant),
        user=ChannelAccount(object_id, aad_object_id=object_id), bot=ChannelAccount(bot_id(services)),
        tenant_id=org.tenant)
    services.addresses.save(reference, trusted=org.service_url_trusted)
    return Address(reference, service_url_trusted=org.service_url_trusted)


def _retry(claimed: Delivery, max_attempts: int, code: str, detail: str) -> Finish:
    if claimed.attempts >= max_attempts:
        return Finish(claimed, DeliveryState.FAILED, code, f"gave up after {claimed.attempts} attempts: {detail}")
    return Finish(claimed, DeliveryState.RETRY, code, detail)


def _lost(claimed: Delivery) -> Finish:
    # Our lease ran out and another host holds the person now: its record is the one that counts.
    log.info("claim of a person lost to another host mid-reach; left to it")
    return Finish(claimed, DeliveryState.RETRY, "claim_lost", "another host took over", counted=False)
