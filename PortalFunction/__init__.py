"""/api/portal/{*path}: the authors' page and its API (signed in with App Service Authentication, not a key)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared_code.app import services
from shared_code.plumbing import http_edge, telemetry
from shared_code.portal import routes

log = logging.getLogger(__name__)


def main(req: func.HttpRequest, context: func.Context = None) -> func.HttpResponse:
    with telemetry.track(log, "PortalFunction", getattr(context, "invocation_id", None)) as outcome:
        outcome.set(method=req.method.upper())
        return outcome.response(http_edge.respond(lambda: routes.handle(req, services.get())))
