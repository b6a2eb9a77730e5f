"""/api/teams: the teams the bot is installed in (GET), so an operator can find a team's id."""

from __future__ import annotations

import logging

import azure.functions as func

from shared_code.app import services
from shared_code.notifications import api
from shared_code.plumbing import http_edge, telemetry
from shared_code.plumbing.errors import BadInput

log = logging.getLogger(__name__)


def main(req: func.HttpRequest, context: func.Context = None) -> func.HttpResponse:
    def handle() -> func.HttpResponse:
        if req.method.upper() != "GET":
            raise BadInput("use GET /api/teams")
        answer = api.teams(services.get())
        outcome.set(method="GET", teams=len(answer.body["teams"]))
        return http_edge.json_response(answer.status, answer.body)

    with telemetry.track(log, "TeamsFunction", getattr(context, "invocation_id", None)) as outcome:
        return outcome.response(http_edge.respond(handle))
