"""/api/notify[/{id}[/report|/audit|/recall]]: send (POST), list and status (GET), CSV report and audit trail,
edit (PATCH), cancel (DELETE), recall."""

from __future__ import annotations

import logging

import azure.functions as func

from shared_code.app import services
from shared_code.notifications import api
from shared_code.notifications.after_send import reports
from shared_code.plumbing import http_edge, telemetry

log = logging.getLogger(__name__)


def main(req: func.HttpRequest, context: func.Context = None) -> func.HttpResponse:
    def handle() -> func.HttpResponse:
        app = services.get()
        notification_id, action = req.route_params.get("id") or "", req.route_params.get("action") or ""
        method = req.method.upper()
        outcome.set(method=method, notification_id=notification_id or None)
        if method == "GET" and notification_id and action in reports.NOTIFICATION_REPORTS:
            return http_edge.csv_response(*reports.for_notification(action, notification_id, app))
        answer = api.route(method, notification_id, action,
                           lambda: http_edge.read_json_object(req, app.settings.max_request_bytes), app,
                           query=req.params, request_url=req.url)
        outcome.set(notification_id=answer.body.get("id") if notification_id or answer.status == 202 else None)
        return http_edge.json_response(answer.status, answer.body)

    with telemetry.track(log, "NotifyFunction", getattr(context, "invocation_id", None)) as outcome:
        return outcome.response(http_edge.respond(handle))
