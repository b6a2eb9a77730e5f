"""/api/notify[/{id}[/report|/recall]]: send (POST), status (GET), CSV report, edit (PATCH), cancel, recall."""

from __future__ import annotations

import logging

import azure.functions as func

from shared_code.app import services
from shared_code.notifications import api
from shared_code.notifications.after_send import reports
from shared_code.plumbing import errors, http_edge, telemetry

log = logging.getLogger(__name__)

def main(req: func.HttpRequest, context: func.Context = None) -> func.HttpResponse:
    def handle() -> func.HttpResponse:
        app = services.get()
        notification_id, action = req.route_params.get("id") or "", req.route_params.get("action") or ""
        method = req.method.upper()
        outcome.set(method=method, notification_id=notification_id or None)
        if method == "GET" and notification_id and action == "report":
            return http_edge.csv_response(reports.notification_report(notification_id, app), f"{notification_id}.csv")
        if method == "POST" and not notification_id:
            answer = api.notify(http_edge.read_json_object(req, app.settings.max_request_bytes), app, request_url=req.url)
        elif method == "GET" and notification_id and not action:
            answer = api.status(notification_id, app)
        elif method == "DELETE" and notification_id and not action:
            answer = api.cancel(notification_id, app)
        elif method == "PATCH" and notification_id and not action:
            answer = api.edit(notification_id, http_edge.read_json_object(req, app.settings.max_request_bytes), app)
        elif method == "POST" and notification_id and action == "recall":
            answer = api.recall(notification_id, app)
        else:
            raise errors.BadInput("use POST /api/notify, GET, PATCH or DELETE /api/notify/{id}, POST .../recall, GET .../report")
        outcome.set(notification_id=answer.body.get("id") if notification_id or answer.status == 202 else None)
        return http_edge.json_response(answer.status, answer.body)

    with telemetry.track(log, "NotifyFunction", getattr(context, "invocation_id", None)) as outcome:
        return outcome.response(http_edge.respond(handle))
