"""GET /api/surveys/{runId}/answers: a survey run's answers as CSV, one row per answer."""

from __future__ import annotations

import logging

import azure.functions as func

from shared_code.app import services
from shared_code.notifications.after_send import reports
from shared_code.plumbing import http_edge, telemetry

log = logging.getLogger(__name__)


def main(req: func.HttpRequest, context: func.Context = None) -> func.HttpResponse:
    def handle() -> func.HttpResponse:
        run_id = req.route_params.get("runId") or ""
        outcome.set(run_id=run_id)
        body = reports.survey_answers_report(run_id, services.get())
        return http_edge.csv_response(body, f"{run_id}-answers.csv")

    with telemetry.track(log, "SurveysFunction", getattr(context, "invocation_id", None)) as outcome:
        return outcome.response(http_edge.respond(handle))
