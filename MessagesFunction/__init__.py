"""POST /api/messages: the Bot Framework endpoint. Every activity a channel sends arrives here."""

from __future__ import annotations

import logging

import azure.functions as func

from shared_code.app import inbound, services
from shared_code.plumbing import http_edge, telemetry

log = logging.getLogger(__name__)


def main(req: func.HttpRequest, context: func.Context = None) -> func.HttpResponse:
    def handle() -> func.HttpResponse:
        app = services.get()
        data = http_edge.read_json(req, app.settings.max_request_bytes)
        answer = inbound.on_activity(data, req.headers.get("Authorization"), app)
        if answer is None:
            return http_edge.json_response(200)
        return http_edge.json_response(answer.status, answer.body)

    with telemetry.track(log, "MessagesFunction", getattr(context, "invocation_id", None)) as outcome:
        return outcome.response(http_edge.respond(handle))
