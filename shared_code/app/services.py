"""The app's long-lived objects (settings, clients, stores), built lazily once per process.

A cache that is safe to lose: `reset()` drops it (tests do, after changing settings),
and the next call builds it again from the environment.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING

from shared_code.plumbing.settings import Settings, load_settings

if TYPE_CHECKING:  # imported lazily below: a function imports only what its path needs (cold start)
    from azure.storage.queue import QueueClient

    from shared_code.conversation.state import DialogStateStore
    from shared_code.conversation.survey import SurveyAnswerStore
    from shared_code.notifications.records.acknowledgements import AcknowledgementStore
    from shared_code.notifications.records.catalogue import Catalogue
    from shared_code.notifications.records.ledger import Ledger
    from shared_code.notifications.records.reads import ReadStore
    from shared_code.notifications.records.store import NotificationStore
    from shared_code.protocol.connector import ConnectorClient
    from shared_code.protocol.graph import GraphClient
    from shared_code.storage.addresses import AddressStore
    from shared_code.storage.people import PeopleIndex
    from shared_code.storage.teams import TeamStore

log = logging.getLogger(__name__)


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        # What "now" is for scheduling and retention: tests move it days ahead instead of sleeping.
        self.clock: Callable[[], datetime] = _utc_now
        self._graph_clients: dict[str, GraphClient] = {}

    @cached_property
    def http_session(self):  # noqa: ANN201 - requests.Session, imported lazily
        from shared_code.plumbing.http_session import pooled_session

        return pooled_session(max(self.settings.send_concurrency, 4))

    @cached_property
    def credentials(self):  # noqa: ANN201 - OutboundCredentials or NoCredentials
        if self.settings.local_mode:
            from shared_code.protocol.connector import NoCredentials

            return NoCredentials()
        from shared_code.protocol.outbound_auth import OutboundCredentials

        return OutboundCredentials(self.settings, self.http_session)

    @cached_property
    def inbound_auth(self):  # noqa: ANN201 - InboundAuthenticator
        from shared_code.protocol.inbound_auth import InboundAuthenticator

        return InboundAuthenticator(self.settings, self.http_session)

    @cached_property
    def connector(self) -> ConnectorClient:
        from shared_code.protocol.connector import ConnectorClient
        from shared_code.protocol.conversation_limits import ConversationLimiter

        # One per process (as this object is): Teams' per-conversation limits, kept in memory.
        return ConnectorClient(self.credentials, self.http_session, conversations=ConversationLimiter())

    @cached_property
    def storage_credential(self):  # noqa: ANN201 - ManagedIdentityCredential
        """The app's managed identity for tables and queue (Azure): the host's AzureWebJobsStorage__* connection."""
        # Imported here and only here: Azurite and local runs never load azure-identity (cold start).
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=self.settings.storage_client_id or None)

    @cached_property
    def storage_transport(self):  # noqa: ANN201 - RequestsTransport, imported lazily
        """One HTTP transport for every table and queue client: one keep-alive pool, sized for the sends
        and queue jobs that reach storage at once."""
        from shared_code.storage.tables import new_transport

        return new_transport(self.settings.send_concurrency + 32)

    @cached_property
    def table_service(self):  # noqa: ANN201 - TableServiceClient
        from azure.data.tables import TableServiceClient

        if self.settings.storage_uses_identity:
            return TableServiceClient(endpoint=self.settings.storage_table_service_uri,
                                      credential=self.storage_credential, transport=self.storage_transport)
        return TableServiceClient.from_connection_string(self.settings.storage_connection,
                                                         transport=self.storage_transport)

    @cached_property
    def addresses(self) -> AddressStore:
        from shared_code.storage.addresses import AddressStore

        return AddressStore(self.table_service.get_table_client(self.settings.addresses_table), people=self.people)

    @cached_property
    def people(self) -> PeopleIndex:
        from shared_code.storage.people import PeopleIndex

        return PeopleIndex(self.table_service.get_table_client(self.settings.people_table))

    def graph(self, tenant: str) -> GraphClient:
        """The Graph client for `tenant`'s directory: one per tenant and process (its token is the tenant's)."""
        with self._lock:
            client = self._graph_clients.get(tenant)
            if client is None:
                from shared_code.protocol.graph import GraphClient, NoBearer

                if self.settings.local_mode:
                    credentials = NoBearer()
                else:
                    from shared_code.plumbing.settings import GRAPH_SCOPE
                    from shared_code.protocol.outbound_auth import OutboundCredentials

                    credentials = OutboundCredentials(self.settings, self.http_session, scope=GRAPH_SCOPE,
                                                      tenant=tenant)
                client = self._graph_clients[tenant] = GraphClient(self.settings.graph_base_url, credentials,
                                                                   self.http_session)
            return client

    @cached_property
    def teams(self) -> TeamStore:
        from shared_code.storage.teams import TeamStore

        return TeamStore(self.table_service.get_table_client(self.settings.teams_table))

    @cached_property
    def dialog_state(self) -> DialogStateStore:
        from shared_code.conversation.state import DialogStateStore

        return DialogStateStore(self.table_service.get_table_client(self.settings.dialog_state_table))

    @cached_property
    def survey_answers(self) -> SurveyAnswerStore:
        from shared_code.conversation.survey import SurveyAnswerStore

        return SurveyAnswerStore(self.table_service.get_table_client(self.settings.survey_answers_table))

    @cached_property
    def notifications(self) -> NotificationStore:
        from shared_code.notifications.records.store import NotificationStore

        return NotificationStore(self.table_service.get_table_client(self.settings.notifications_table))

    @cached_property
    def ledger(self) -> Ledger:
        from shared_code.notifications.records.ledger import Ledger

        return Ledger(self.table_service.get_table_client(self.settings.deliveries_table),
                      lease_seconds=self.settings.delivery_lease_seconds)

    @cached_property
    def acknowledgements(self) -> AcknowledgementStore:
        from shared_code.notifications.records.acknowledgements import AcknowledgementStore

        return AcknowledgementStore(self.table_service.get_table_client(self.settings.acknowledgements_table))

    @cached_property
    def reads(self) -> ReadStore:
        from shared_code.notifications.records.reads import ReadStore

        return ReadStore(self.table_service.get_table_client(self.settings.acknowledgements_table))

    @cached_property
    def catalogue(self) -> Catalogue:
        from shared_code.notifications.records.catalogue import Catalogue

        return Catalogue(self.table_service.get_table_client(self.settings.notifications_table))

    def queue(self, name: str | None = None) -> QueueClient:
        from azure.storage.queue import QueueClient

        if self.settings.storage_uses_identity:
            return QueueClient(self.settings.storage_queue_service_uri, name or self.settings.jobs_queue,
                               credential=self.storage_credential, transport=self.storage_transport)
        return QueueClient.from_connection_string(self.settings.storage_connection, name or self.settings.jobs_queue,
                                                  transport=self.storage_transport)


def _utc_now() -> datetime:
    return datetime.now(UTC)


_current: Services | None = None
_lock = threading.Lock()


def get() -> Services:
    global _current
    current = _current
    if current is None:
        with _lock:
            if _current is None:
                from shared_code.plumbing.telemetry import install_redaction, quiet_sdk_loggers

                install_redaction()  # every log line, not only the outcome lines, loses credentials
                quiet_sdk_loggers()  # whatever host runs us: the worker forwards INFO to Application Insights
                _current = Services(load_settings())
                if _current.settings.local_mode:
                    log.warning("MicrosoftAppId is empty: local mode. Inbound requests are not authenticated "
                                "and no token is sent to channels. Set MicrosoftAppId to deploy.")
            current = _current
    return current


def reset() -> None:
    global _current
    with _lock:
        _current = None
