"""What the conversation needs from the app: the long-lived settings, clients and stores, named by type.

The composition root (`app.services.Services`) provides all of it; the conversation names only this
`Protocol`, so it never depends on how, or where, they are built. A test may hand it any object with
these members.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # types only: none of these is imported when the conversation runs
    from azure.storage.queue import QueueClient

    from shared_code.conversation.state import DialogStateStore
    from shared_code.conversation.survey import SurveyAnswerStore
    from shared_code.plumbing.settings import Settings
    from shared_code.protocol.connector import ConnectorClient, NoCredentials
    from shared_code.protocol.inbound_auth import InboundAuthenticator
    from shared_code.protocol.outbound_auth import OutboundCredentials
    from shared_code.storage.addresses import AddressStore
    from shared_code.storage.teams import TeamStore


class ConversationServices(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def addresses(self) -> AddressStore: ...

    @property
    def teams(self) -> TeamStore: ...

    @property
    def dialog_state(self) -> DialogStateStore: ...

    @property
    def survey_answers(self) -> SurveyAnswerStore: ...

    @property
    def connector(self) -> ConnectorClient: ...

    @property
    def credentials(self) -> OutboundCredentials | NoCredentials: ...

    @property
    def inbound_auth(self) -> InboundAuthenticator: ...

    def queue(self, name: str | None = None) -> QueueClient:
        """The jobs queue, or the queue `name`."""
        ...
