"""/api/notify[/{id}]: send proactive messages (POST), read a notification's status (GET), cancel it (DELETE)."""

from __future__ import annotations

import azure.functions as func

from shared_code import edge, notify, services
from shared_code.errors import BadInput


def main(req: func.HttpRequest) -> func.HttpResponse:
    def handle() -> func.HttpResponse:
        app = services.get()
        notification_id = req.route_params.get("id") or ""
        method = req.method.upper()
        if method == "POST" and not notification_id:
            data = edge.read_json_object(req, app.settings.max_request_bytes)
            answer = notify.notify(data, app, request_url=req.url)
        elif method == "GET" and notification_id:
            answer = notify.status(notification_id, app)
        elif method == "DELETE" and notification_id:
            answer = notify.cancel(notification_id, app)
        else:
            raise BadInput("use POST /api/notify, GET or DELETE /api/notify/{id}")
        return edge.json_response(answer.status, answer.body)

    return edge.respond(handle)
