"""Errors: one small hierarchy, each kind carrying the HTTP status it maps to."""

from __future__ import annotations


class AppError(Exception):
    """Root of every error the app raises on purpose. `code` is stable and machine-readable."""

    status: int = 500
    code: str = "internal_error"

    # The connector's X-Correlating-OperationId, when the error came from it: operators quote it.
    operation_id: str = ""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(AppError):
    """A setting is missing or malformed: an operator must fix it."""

    code = "configuration_error"


class BadInput(AppError):
    status = 400
    code = "bad_request"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class Forbidden(AppError):
    """Signed in, but not allowed to do this (the authors' page: a role that does not cover the request)."""
    status = 403
    code = "forbidden"


class NotFound(AppError):
    status = 404
    code = "not_found"


class Conflict(AppError):
    """The same id was used before for something different (an idempotency key reused)."""

    status = 409
    code = "conflict"


class TooLarge(AppError):
    status = 413
    code = "payload_too_large"


class RecipientGone(AppError):
    """The user removed or blocked the bot (connector 403/404): never retry, deactivate."""

    status = 410
    code = "recipient_gone"


class Throttled(AppError):
    """The connector said 429 (or 503): retry after `retry_after` seconds."""

    status = 429
    code = "throttled"

    def __init__(self, message: str, *, retry_after: float | None = None, status: int = 429) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class Upstream(AppError):
    """The connector or a Bot Framework service failed; `transient` says whether a retry may fix it."""

    status = 502
    code = "upstream_error"

    def __init__(self, message: str, *, code: str | None = None, transient: bool = True) -> None:
        super().__init__(message, code=code)
        self.transient = transient


class AppRejected(AppError):
    """The channel refuses the bot as a whole (BotDisabledByAdmin, BotNotRegistered): stop everything."""

    status = 502
    code = "bot_rejected"


class UntrustedServiceUrl(AppError):
    """The bot's token would go to a serviceUrl no authenticated activity vouched for."""

    status = 400
    code = "untrusted_service_url"
