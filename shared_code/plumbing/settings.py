"""Settings: read once from the environment, with the Bot Framework names."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared_code.plumbing.errors import ConfigError

CHANNEL_OPENID_METADATA = "https://login.botframework.com/v1/.well-known/openidconfiguration"
EMULATOR_OPENID_METADATA = (
    "https://login.microsoftonline.com/botframework.com/v2.0/.well-known/openid-configuration"
)
CHANNEL_TOKEN_ISSUER = "https://api.botframework.com"
MULTI_TENANT_LOGIN_URL = "https://login.microsoftonline.com/botframework.com"
BOT_OAUTH_SCOPE = "https://api.botframework.com/.default"
GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
TEAMS_SERVICE_URL = "https://smba.trafficmanager.net/teams/"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting the app reads. Names in comments are the app-setting names."""

    microsoft_app_id: str = ""  # MicrosoftAppId; empty = local mode, auth off
    microsoft_app_password: str = field(default="", repr=False)  # MicrosoftAppPassword
    microsoft_app_tenant_id: str = ""  # MicrosoftAppTenantId
    microsoft_app_type: str = "MultiTenant"  # MicrosoftAppType: MultiTenant | SingleTenant | UserAssignedMSI
    to_channel_from_bot_login_url: str = MULTI_TENANT_LOGIN_URL  # ToChannelFromBotLoginUrl
    to_channel_from_bot_oauth_scope: str = BOT_OAUTH_SCOPE  # ToChannelFromBotOAuthScope
    to_bot_from_channel_openid_metadata_url: str = CHANNEL_OPENID_METADATA
    to_bot_from_emulator_openid_metadata_url: str = EMULATOR_OPENID_METADATA
    to_bot_from_channel_token_issuer: str = CHANNEL_TOKEN_ISSUER
    storage_connection: str = "UseDevelopmentStorage=true"  # AzureWebJobsStorage (Azurite, local runs)
    # Identity-based storage, the host's own AzureWebJobsStorage__* settings: when set, the connection string is unused.
    storage_table_service_uri: str = ""  # AzureWebJobsStorage__tableServiceUri
    storage_queue_service_uri: str = ""  # AzureWebJobsStorage__queueServiceUri
    storage_credential: str = ""  # AzureWebJobsStorage__credential: managedidentity
    storage_client_id: str = ""  # AzureWebJobsStorage__clientId: the user-assigned identity; empty = system-assigned
    addresses_table: str = "ConversationReferences"  # AddressesTableName
    dialog_state_table: str = "DialogState"  # DialogStateTableName
    survey_answers_table: str = "SurveyAnswers"  # SurveyAnswersTableName
    deliveries_table: str = "Deliveries"  # DeliveriesTableName
    notifications_table: str = "Notifications"  # NotificationsTableName
    acknowledgements_table: str = "Acknowledgements"  # AcknowledgementsTableName: acks and reactions
    teams_table: str = "Teams"  # TeamsTableName: the teams the bot is installed in
    jobs_queue: str = "proactive-jobs"  # JobsQueueName
    trusted_service_urls: tuple[str, ...] = ()  # TrustedServiceUrls, comma separated
    max_request_bytes: int = 256 * 1024  # MaxRequestBytes
    send_concurrency: int = 16  # SendConcurrency
    send_rate_per_second: float = 1000.0  # SendRatePerSecond: one instance's ceiling, all tenants together
    broadcast_page_size: int = 500  # BroadcastPageSize: recipients per page job (fewer pages: fewer table operations)
    send_max_attempts: int = 5  # SendMaxAttempts: tries per recipient before it counts as failed
    retry_delay_scale: float = 1.0  # RetryDelayScale: multiplies re-enqueue delays (tests shrink them)
    delivery_lease_seconds: float = 60.0  # DeliveryLeaseSeconds: a claim older than this is abandoned
    stalled_after_seconds: int = 900  # StalledAfterSeconds: a running broadcast with no progress this long is resumed
    # PageWatchSeconds: how often a running page's watchdog looks at its heartbeat; a page whose host died is
    # re-issued at most about 1.75 times this after the death (notifications/sending/watch.py)
    page_watch_seconds: int = 20
    survey_schedule: str = "0 0 9 * * 1-5"  # SurveySchedule (six-field NCRONTAB)
    survey_questions: tuple[str, ...] = ()  # SurveyQuestions, separated by "|"
    survey_audience: str = "all"  # SurveyAudience: "all" or "channel:<channel id>"
    public_base_url: str = "http://localhost:7071"  # PublicBaseUrl, for links the bot shows
    survey_prompts_json: str = ""  # SurveyPromptsJson: {"fr": {"prompt": ..., "back": ...}}; English by default
    scheduled_notifications_schedule: str = "0 */5 * * * *"  # ScheduledNotificationsSchedule (NCRONTAB)
    purge_schedule: str = "0 30 3 * * *"  # PurgeSchedule (NCRONTAB)
    address_max_idle_days: int = 0  # AddressMaxIdleDays: broadcasts skip addresses unseen this long; 0 = never
    address_retention_days: int = 0  # AddressRetentionDays: purge addresses unseen this long; 0 = keep
    delivery_retention_days: int = 30  # DeliveryRetentionDays: purge finished notifications and their ledger
    rate_budget_table: str = "RateBudget"  # RateBudgetTableName: one row per bot and tenant, shared by all instances
    tenant_send_rate_per_second: float = 48.0  # TenantSendRatePerSecond: all instances together, per tenant
    # Microsoft Graph, for audiences of people who never wrote to the bot (groups, lists, the tenant).
    graph_base_url: str = GRAPH_BASE_URL  # GraphBaseUrl
    teams_app_catalog_id: str = ""  # TeamsAppCatalogId: the app in the org catalog; empty = looked up by MicrosoftAppId
    teams_service_url: str = TEAMS_SERVICE_URL  # TeamsServiceUrl: a tenant's serviceUrl before any activity came from it
    people_table: str = "People"  # PeopleTableName: personal addresses by Entra object id, and tenants' serviceUrls
    # GraphRatePerSecond: per kind of Graph call (installs, reads of installed apps, other reads), per tenant, all
    # instances together; Graph allows 30 (Teams service limits): two slots of margin, as 48 leaves of 50 (at 29 a
    # late wake-up met a 429 about once in 300 reads, each costing the tenant a pause and a quarter of its rate).
    graph_rate_per_second: float = 28.0
    # The authors' page (shared_code/portal). WEBSITE_AUTH_ENABLED is App Service's own: "True" when App Service
    # Authentication (Easy Auth) is on; the page's API trusts the platform's principal header only then.
    website_auth_enabled: bool = False
    portal_client_id: str = ""  # PortalClientId: the app registration authors sign in with (its ID token is checked)
    portal_openid_metadata_url: str = ""  # PortalOpenIdMetadataUrl; empty: Entra's, for MicrosoftAppTenantId
    portal_authors_group_id: str = ""  # PortalAuthorsGroupId: members are Authors (besides the app role)
    portal_admins_group_id: str = ""  # PortalAdminsGroupId: members are Admins (besides the app role)
    # PortalAuthorAudiences: the audiences an Author may send to (Admins: every audience)
    portal_author_audiences: tuple[str, ...] = ("conversation", "user", "team", "teamChannel", "group", "users")

    @property
    def local_mode(self) -> bool:
        """No app id: inbound auth is off and no token is sent (local development)."""
        return not self.microsoft_app_id

    @property
    def storage_uses_identity(self) -> bool:
        """Tables and queue are reached with the managed identity (Azure), not the connection string (Azurite)."""
        return bool(self.storage_table_service_uri or self.storage_queue_service_uri or self.storage_credential)

    @property
    def single_tenant(self) -> bool:
        """A bot of one Entra tenant: SingleTenant with a secret, or UserAssignedMSI (its identity's tenant)."""
        return self.microsoft_app_type in ("SingleTenant", "UserAssignedMSI")


# (attribute, app-setting name) pairs: the one place the wire names live.
SETTING_NAMES: dict[str, str] = {
    "microsoft_app_id": "MicrosoftAppId",
    "microsoft_app_password": "MicrosoftAppPassword",
    "microsoft_app_tenant_id": "MicrosoftAppTenantId",
    "microsoft_app_type": "MicrosoftAppType",
    "to_channel_from_bot_login_url": "ToChannelFromBotLoginUrl",
    "to_channel_from_bot_oauth_scope": "ToChannelFromBotOAuthScope",
    "to_bot_from_channel_openid_metadata_url": "ToBotFromChannelOpenIdMetadataUrl",
    "to_bot_from_emulator_openid_metadata_url": "ToBotFromEmulatorOpenIdMetadataUrl",
    "to_bot_from_channel_token_issuer": "ToBotFromChannelTokenIssuer",
    "storage_connection": "AzureWebJobsStorage",
    "storage_table_service_uri": "AzureWebJobsStorage__tableServiceUri",
    "storage_queue_service_uri": "AzureWebJobsStorage__queueServiceUri",
    "storage_credential": "AzureWebJobsStorage__credential",
    "storage_client_id": "AzureWebJobsStorage__clientId",
    "addresses_table": "AddressesTableName",
    "dialog_state_table": "DialogStateTableName",
    "survey_answers_table": "SurveyAnswersTableName",
    "deliveries_table": "DeliveriesTableName",
    "notifications_table": "NotificationsTableName",
    "acknowledgements_table": "AcknowledgementsTableName",
    "teams_table": "TeamsTableName",
    "jobs_queue": "JobsQueueName",
    "trusted_service_urls": "TrustedServiceUrls",
    "max_request_bytes": "MaxRequestBytes",
    "send_concurrency": "SendConcurrency",
    "send_rate_per_second": "SendRatePerSecond",
    "broadcast_page_size": "BroadcastPageSize",
    "send_max_attempts": "SendMaxAttempts",
    "retry_delay_scale": "RetryDelayScale",
    "delivery_lease_seconds": "DeliveryLeaseSeconds",
    "stalled_after_seconds": "StalledAfterSeconds",
    "page_watch_seconds": "PageWatchSeconds",
    "survey_schedule": "SurveySchedule",
    "survey_questions": "SurveyQuestions",
    "survey_audience": "SurveyAudience",
    "public_base_url": "PublicBaseUrl",
    "survey_prompts_json": "SurveyPromptsJson",
    "scheduled_notifications_schedule": "ScheduledNotificationsSchedule",
    "purge_schedule": "PurgeSchedule",
    "address_max_idle_days": "AddressMaxIdleDays",
    "address_retention_days": "AddressRetentionDays",
    "delivery_retention_days": "DeliveryRetentionDays",
    "rate_budget_table": "RateBudgetTableName",
    "tenant_send_rate_per_second": "TenantSendRatePerSecond",
    "graph_base_url": "GraphBaseUrl",
    "teams_app_catalog_id": "TeamsAppCatalogId",
    "teams_service_url": "TeamsServiceUrl",
    "people_table": "PeopleTableName",
    "graph_rate_per_second": "GraphRatePerSecond",
    "website_auth_enabled": "WEBSITE_AUTH_ENABLED",
    "portal_client_id": "PortalClientId",
    "portal_openid_metadata_url": "PortalOpenIdMetadataUrl",
    "portal_authors_group_id": "PortalAuthorsGroupId",
    "portal_admins_group_id": "PortalAdminsGroupId",
    "portal_author_audiences": "PortalAuthorAudiences",
}


def _split(value: str, sep: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(sep) if part.strip())


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from app settings (the environment by default).

    Unset or empty values keep their defaults; a value of the wrong type is a
    ConfigError naming the setting, so a typo fails at start, not mid-broadcast.
    """
    env = os.environ if env is None else env
    defaults = Settings()
    values: dict[str, object] = {}
    for attr, name in SETTING_NAMES.items():
        raw = env.get(name, "")
        if raw is None or raw.strip() == "":
            continue
        default = getattr(defaults, attr)
        try:
            if isinstance(default, bool):
                values[attr] = raw.strip().lower() in ("1", "true", "yes")
            elif isinstance(default, int):
                values[attr] = int(raw)
            elif isinstance(default, float):
                values[attr] = float(raw)
            elif attr == "survey_questions":
                values[attr] = _split(raw, "|")
            elif isinstance(default, tuple):
                values[attr] = _split(raw, ",")
            else:
                values[attr] = raw.strip()
        except ValueError as exc:
            raise ConfigError(f"setting {name} is not a valid {type(default).__name__}: {raw!r}") from exc
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.max_request_bytes <= 0 or settings.send_concurrency <= 0 or settings.send_rate_per_second <= 0:
        raise ConfigError("MaxRequestBytes, SendConcurrency and SendRatePerSecond must be positive")
    if min(settings.address_max_idle_days, settings.address_retention_days, settings.delivery_retention_days) < 0:
        raise ConfigError("AddressMaxIdleDays, AddressRetentionDays and DeliveryRetentionDays must be 0 or more")
    if settings.tenant_send_rate_per_second <= 0 or settings.graph_rate_per_second <= 0:
        raise ConfigError("TenantSendRatePerSecond and GraphRatePerSecond must be positive")
    if settings.page_watch_seconds < 1:
        raise ConfigError("PageWatchSeconds must be at least 1 (a page's heartbeat is a quarter of it)")
    if settings.microsoft_app_type not in ("MultiTenant", "SingleTenant", "UserAssignedMSI"):
        raise ConfigError("setting MicrosoftAppType must be MultiTenant, SingleTenant or UserAssignedMSI, "
                          f"not {settings.microsoft_app_type!r}")
    if settings.microsoft_app_type == "UserAssignedMSI" and settings.microsoft_app_password:
        # The point of the identity is that no secret exists: a leftover one is a leak waiting to happen.
        raise ConfigError("MicrosoftAppType is UserAssignedMSI, which uses no secret: remove MicrosoftAppPassword")
    _check_storage_identity(settings)
    return settings


def _check_storage_identity(settings: Settings) -> None:
    if not settings.storage_uses_identity:
        return
    missing = [name for attr, name in (("storage_table_service_uri", "AzureWebJobsStorage__tableServiceUri"),
                                       ("storage_queue_service_uri", "AzureWebJobsStorage__queueServiceUri"))
               if not getattr(settings, attr)]
    if missing:
        raise ConfigError(f"identity-based storage needs {' and '.join(missing)} (the account's service URIs)")
    if settings.storage_credential.lower() != "managedidentity":
        raise ConfigError("setting AzureWebJobsStorage__credential must be managedidentity with "
                          f"AzureWebJobsStorage__tableServiceUri, not {settings.storage_credential!r}")


def storage_names(suffix: str) -> dict[str, str]:
    """Table and queue settings of their own for `suffix`: several apps (tests, benchmarks) share one account."""
    return {
        "AddressesTableName": f"addr{suffix}",
        "DialogStateTableName": f"state{suffix}",
        "SurveyAnswersTableName": f"answers{suffix}",
        "DeliveriesTableName": f"deliv{suffix}",
        "NotificationsTableName": f"notif{suffix}",
        "AcknowledgementsTableName": f"acks{suffix}",
        "TeamsTableName": f"teams{suffix}",
        "JobsQueueName": f"jobs-{suffix}",
        "RateBudgetTableName": f"rate{suffix}",
        "PeopleTableName": f"people{suffix}",
    }
