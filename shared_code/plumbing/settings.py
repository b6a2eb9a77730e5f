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


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting the app reads. Names in comments are the app-setting names."""

    microsoft_app_id: str = ""  # MicrosoftAppId; empty = local mode, auth off
    microsoft_app_password: str = field(default="", repr=False)  # MicrosoftAppPassword
    microsoft_app_tenant_id: str = ""  # MicrosoftAppTenantId
    microsoft_app_type: str = "MultiTenant"  # MicrosoftAppType: MultiTenant | SingleTenant
    to_channel_from_bot_login_url: str = MULTI_TENANT_LOGIN_URL  # ToChannelFromBotLoginUrl
    to_channel_from_bot_oauth_scope: str = BOT_OAUTH_SCOPE  # ToChannelFromBotOAuthScope
    to_bot_from_channel_openid_metadata_url: str = CHANNEL_OPENID_METADATA
    to_bot_from_emulator_openid_metadata_url: str = EMULATOR_OPENID_METADATA
    to_bot_from_channel_token_issuer: str = CHANNEL_TOKEN_ISSUER
    storage_connection: str = "UseDevelopmentStorage=true"  # AzureWebJobsStorage
    addresses_table: str = "ConversationReferences"  # AddressesTableName
    dialog_state_table: str = "DialogState"  # DialogStateTableName
    survey_answers_table: str = "SurveyAnswers"  # SurveyAnswersTableName
    deliveries_table: str = "Deliveries"  # DeliveriesTableName
    notifications_table: str = "Notifications"  # NotificationsTableName
    jobs_queue: str = "proactive-jobs"  # JobsQueueName
    trusted_service_urls: tuple[str, ...] = ()  # TrustedServiceUrls, comma separated
    max_request_bytes: int = 256 * 1024  # MaxRequestBytes
    send_concurrency: int = 16  # SendConcurrency
    send_rate_per_second: float = 50.0  # SendRatePerSecond
    broadcast_page_size: int = 100  # BroadcastPageSize: recipients per page job
    send_max_attempts: int = 5  # SendMaxAttempts: tries per recipient before it counts as failed
    retry_delay_scale: float = 1.0  # RetryDelayScale: multiplies re-enqueue delays (tests shrink them)
    delivery_lease_seconds: float = 60.0  # DeliveryLeaseSeconds: a claim older than this is abandoned
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

    @property
    def local_mode(self) -> bool:
        """No app id: inbound auth is off and no token is sent (local development)."""
        return not self.microsoft_app_id


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
    "addresses_table": "AddressesTableName",
    "dialog_state_table": "DialogStateTableName",
    "survey_answers_table": "SurveyAnswersTableName",
    "deliveries_table": "DeliveriesTableName",
    "notifications_table": "NotificationsTableName",
    "jobs_queue": "JobsQueueName",
    "trusted_service_urls": "TrustedServiceUrls",
    "max_request_bytes": "MaxRequestBytes",
    "send_concurrency": "SendConcurrency",
    "send_rate_per_second": "SendRatePerSecond",
    "broadcast_page_size": "BroadcastPageSize",
    "send_max_attempts": "SendMaxAttempts",
    "retry_delay_scale": "RetryDelayScale",
    "delivery_lease_seconds": "DeliveryLeaseSeconds",
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
    if settings.tenant_send_rate_per_second <= 0:
        raise ConfigError("TenantSendRatePerSecond must be positive")
    if settings.microsoft_app_type not in ("MultiTenant", "SingleTenant", "UserAssignedMSI"):
        raise ConfigError(f"setting MicrosoftAppType must be MultiTenant or SingleTenant, not {settings.microsoft_app_type!r}")
    return settings


def storage_names(suffix: str) -> dict[str, str]:
    """Table and queue settings of their own for `suffix`: several apps (tests, benchmarks) share one account."""
    return {
        "AddressesTableName": f"addr{suffix}",
        "DialogStateTableName": f"state{suffix}",
        "SurveyAnswersTableName": f"answers{suffix}",
        "DeliveriesTableName": f"deliv{suffix}",
        "NotificationsTableName": f"notif{suffix}",
        "JobsQueueName": f"jobs-{suffix}",
        "RateBudgetTableName": f"rate{suffix}",
    }
