"""Bot Framework authentication: one import for inbound JWT checks and outbound bot tokens."""

from __future__ import annotations

from shared_code.auth_inbound import (
    ALLOWED_ALGORITHMS,
    CLOCK_SKEW_SECONDS,
    EMULATOR_TOKEN_ISSUERS,
    InboundAuthenticator,
    SigningKeyCache,
)
from shared_code.auth_outbound import OutboundCredentials, normalize_service_url

__all__ = [
    "ALLOWED_ALGORITHMS",
    "CLOCK_SKEW_SECONDS",
    "EMULATOR_TOKEN_ISSUERS",
    "InboundAuthenticator",
    "OutboundCredentials",
    "SigningKeyCache",
    "normalize_service_url",
]
