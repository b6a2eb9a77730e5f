"""What the notifications need from the app: the conversation's services, and the stores of what a
notification leaves behind.

The composition root (`app.services.Services`) provides all of it; notifications name only this
`Protocol`, so they never depend on how, or where, it is built.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from shared_code.conversation.ports import ConversationServices

if TYPE_CHECKING:  # types only: none of these is imported when a notification runs
    from azure.data.tables import TableServiceClient

    from shared_code.notifications.records.acknowledgements import AcknowledgementStore
    from shared_code.notifications.records.catalogue import Catalogue
    from shared_code.notifications.records.ledger import Ledger
    from shared_code.notifications.records.reads import ReadStore
    from shared_code.notifications.records.store import NotificationStore
    from shared_code.protocol.graph import GraphClient
    from shared_code.storage.people import PeopleIndex


class NotificationServices(ConversationServices, Protocol):
    # What "now" is for scheduling and retention: tests move it days ahead instead of sleeping.
    clock: Callable[[], datetime]

    @property
    def table_service(self) -> TableServiceClient: ...

    @property
    def notifications(self) -> NotificationStore: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def acknowledgements(self) -> AcknowledgementStore: ...

    @property
    def reads(self) -> ReadStore: ...

    @property
    def catalogue(self) -> Catalogue: ...

    @property
    def people(self) -> PeopleIndex: ...

    def graph(self, tenant: str) -> GraphClient:
        """Microsoft Graph for `tenant`'s directory (organisation audiences)."""
        ...
