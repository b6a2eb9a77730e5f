"""Throwaway function apps for the dev host's tests: a function folder written to disk, HTTP bindings, an echo."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path


def write_function(root: Path, name: str, bindings: list[dict], code: str) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "function.json").write_text(json.dumps({"scriptFile": "__init__.py", "bindings": bindings}))
    (folder / "__init__.py").write_text(textwrap.dedent(code))


def http_bindings(route: str, methods: list[str] | None = None, auth: str = "function") -> list[dict]:
    trigger = {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": auth, "route": route}
    if methods:
        trigger["methods"] = methods
    return [trigger, {"type": "http", "direction": "out", "name": "$return"}]


ECHO = """
    import json
    import azure.functions as func

    def main(req: func.HttpRequest, context) -> func.HttpResponse:
        if req.params.get("fail"):
            raise RuntimeError("SECRET-DETAIL in a traceback")
        payload = {
            "method": req.method, "url": req.url, "route": dict(req.route_params), "params": dict(req.params),
            "body": req.get_body().decode(), "header": req.headers.get("x-test"),
            "function": context.function_name, "invocation": context.invocation_id,
        }
        return func.HttpResponse(json.dumps(payload), status_code=201, headers={"X-Echo": "yes"},
                                 mimetype="application/json")
"""
