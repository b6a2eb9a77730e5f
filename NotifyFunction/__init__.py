"""/api/notify: send a proactive message to saved users, from people and services."""

from __future__ import annotations

import azure.functions as func

from shared_code import edge, notify, services


def main(req: func.HttpRequest) -> func.HttpResponse:
    def handle() -> func.HttpResponse:
        app = services.get()
        data = edge.read_json_object(req, app.settings.max_request_bytes)
        return edge.json_response(200, notify.notify(data, app))

    return edge.respond(handle)
