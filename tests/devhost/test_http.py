"""devhost HTTP triggers: routes, methods, request and response mapping, errors, on throwaway apps."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devhost.host import Host
from tests.support.function_apps import ECHO, http_bindings, write_function


@pytest.fixture
def echo_host(tmp_path: Path) -> Iterator[Host]:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    write_function(tmp_path, "HttpEchoFn", http_bindings("items/{id?}", ["get", "post"]), ECHO)
    write_function(tmp_path, "HttpTypedFn", http_bindings("typed/{n:int}", ["get"]),
                   "import azure.functions as func\n\ndef main(req):\n    return func.HttpResponse(req.route_params['n'])\n")
    with Host(tmp_path, port=0) as host:
        yield host


def test_http_optional_route_parameter_absent(echo_host: Host) -> None:
    response = requests.get(f"{echo_host.url}/api/items", timeout=5)

    assert response.status_code == 201
    assert response.json()["route"] == {}
    assert response.headers["X-Echo"] == "yes"
    assert response.headers["Content-Type"] == "application/json"


def test_http_route_parameter_query_and_body_reach_the_function(echo_host: Host) -> None:
    response = requests.post(f"{echo_host.url}/api/items/42?a=1&b=two&a=3", data=b'{"x": 1}',
                             headers={"X-Test": "hello"}, timeout=5)

    body = response.json()
    assert response.status_code == 201
    assert body["method"] == "POST"
    assert body["route"] == {"id": "42"}
    assert body["params"] == {"a": "1,3", "b": "two"}  # repeated keys joined, as the host does
    assert body["body"] == '{"x": 1}'
    assert body["header"] == "hello"
    assert body["url"].endswith("/api/items/42?a=1&b=two&a=3")
    assert body["function"] == "HttpEchoFn"
    assert len(body["invocation"]) == 36


def test_http_route_constraint_rejects_a_non_matching_value(echo_host: Host) -> None:
    ok = requests.get(f"{echo_host.url}/api/typed/7", timeout=5)
    wrong = requests.get(f"{echo_host.url}/api/typed/seven", timeout=5)

    assert (ok.status_code, ok.text) == (200, "7")
    assert wrong.status_code == 404


def test_http_unknown_route_is_404_json(echo_host: Host) -> None:
    response = requests.get(f"{echo_host.url}/api/nothing/here", timeout=5)

    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "NotFound"


def test_http_wrong_method_is_405_json(echo_host: Host) -> None:
    response = requests.delete(f"{echo_host.url}/api/items/1", timeout=5)

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "MethodNotAllowed"
    assert set(response.headers["Allow"].split(", ")) == {"GET", "POST"}


def test_http_raising_function_is_500_json_with_invocation_id_and_no_traceback(
        echo_host: Host, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="devhost"):
        response = requests.get(f"{echo_host.url}/api/items?fail=1", timeout=5)

    error = response.json()["error"]
    assert response.status_code == 500
    assert error["code"] == "FunctionFailed"
    assert "SECRET-DETAIL" not in response.text and "Traceback" not in response.text
    assert f"Executed 'Functions.HttpEchoFn' (Failed, Id={error['invocationId']}" in caplog.text
    assert "SECRET-DETAIL" in caplog.text  # the server side keeps the details


def test_http_invocation_is_logged_like_the_host(echo_host: Host, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="devhost"):
        invocation = requests.get(f"{echo_host.url}/api/items", timeout=5).json()["invocation"]

    assert "Executing 'Functions.HttpEchoFn' (Reason=" in caplog.text
    assert f"Executed 'Functions.HttpEchoFn' (Succeeded, Id={invocation}, Duration=" in caplog.text


def test_http_function_without_script_file_is_skipped_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    write_function(tmp_path, "HttpPresentFn", http_bindings("present"), ECHO)
    (tmp_path / "HttpMissingFn").mkdir()
    (tmp_path / "HttpMissingFn" / "function.json").write_text(json.dumps({"bindings": http_bindings("missing")}))

    with Host(tmp_path, port=0) as host:
        present = requests.get(f"{host.url}/api/present", timeout=5)
        missing = requests.get(f"{host.url}/api/missing", timeout=5)

    assert present.status_code == 201
    assert missing.status_code == 404
    assert "HttpMissingFn" in host.skipped


def test_http_function_can_import_its_own_module_and_app_packages(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}))
    (tmp_path / "devhost_test_shared").mkdir()
    (tmp_path / "devhost_test_shared" / "__init__.py").write_text("GREETING = 'hi from shared'\n")
    write_function(tmp_path, "HttpImportsFn", http_bindings("greet"), """
        from devhost_test_shared import GREETING
        from . import helper

        def main(req):
            return helper.shout(GREETING)
    """)
    (tmp_path / "HttpImportsFn" / "helper.py").write_text("def shout(text):\n    return text.upper()\n")

    with Host(tmp_path, port=0) as host:
        response = requests.get(f"{host.url}/greet", timeout=5)

    assert (response.status_code, response.text) == (200, "HI FROM SHARED")


def test_http_function_module_is_imported_under_the_app_namespace(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    write_function(tmp_path, "HttpNameFn", http_bindings("name"), "def main(req):\n    return __name__\n")

    with Host(tmp_path, port=0) as host:
        response = requests.get(f"{host.url}/api/name", timeout=5)

    assert response.text == "__app__.HttpNameFn"  # as the Python worker names it


def test_http_function_returning_nothing_answers_204(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    write_function(tmp_path, "HttpNoneFn", http_bindings("none"), "def main(req):\n    return None\n")

    with Host(tmp_path, port=0) as host:
        response = requests.get(f"{host.url}/api/none", timeout=5)

    assert (response.status_code, response.content) == (204, b"")


def test_a_catch_all_route_parameter_also_matches_nothing() -> None:
    from devhost.routes import RouteTemplate

    template = RouteTemplate.parse("portal/{*path}")

    assert template.match("portal/") == {"path": ""}
    assert template.match("portal/api/notify/n-1") == {"path": "api/notify/n-1"}
    assert template.match("portals/x") is None
