"""Proactive messages: a message the bot starts, sent to a saved address."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from shared_code.plumbing.errors import RecipientGone
from shared_code.protocol.activity import message_to
from shared_code.protocol.content import LocalizedContent
from shared_code.storage.addresses import Address

if TYPE_CHECKING:
    from shared_code.conversation.ports import ConversationServices

log = logging.getLogger(__name__)


def send_proactive_message(
    address: Address,
    services: ConversationServices,
    *,
    text: str = "",
    locale: str | None = None,
    extra: dict[str, Any] | None = None,
    retries: int = 2,
) -> str:
    """Send `text` (and any extra activity fields) to the user at `address`; returns the activity id.

    An inactive address is refused before anything is sent. A connector answer that says
    the user is gone (403/404) marks the address inactive, so later sends skip it.
    """
    if not address.active:
        raise RecipientGone(f"the address is inactive ({address.inactive_reason or 'no reason recorded'})",
                            code="address_inactive")
    activity = message_to(address.reference, text, locale=locale, extra=extra)
    try:
        return services.connector.send_to_conversation(
            address.reference, activity, trusted=address.service_url_trusted, retries=retries
        )
    except RecipientGone as gone:
        services.addresses.deactivate(address.channel_id, address.conversation_id, gone.code)
        raise


def send_localized(
    address: Address,
    content: LocalizedContent,
    services: ConversationServices,
    *,
    locale: str | None = None,
    retries: int = 2,
) -> str:
    """Send the part of `content` meant for the address's locale (exact, language, then the default)."""
    fields = content.for_locale(address.reference.locale).activity_fields()
    return send_proactive_message(address, services, text=fields.pop("text", ""), locale=locale,
                                  extra=fields or None, retries=retries)
