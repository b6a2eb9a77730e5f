"""The app's host.json and every function.json against the official schemas, plus the trigger fields they leave loose."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from devhost.app import FunctionSpec, resolve_settings
from devhost.routes import RouteTemplate
from devhost.timer_trigger import parse_schedule

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
FUNCTION_FILES = sorted(ROOT.glob("*/function.json"))
DEFINITION_FOR_TYPE = {
    "httpTrigger": "httpBinding", "http": "httpBinding",
    "queueTrigger": "queueBinding", "queue": "queueBinding",
    "timerTrigger": "timerTriggerBinding",
}
HTTP_METHODS = {"get", "post", "delete", "head", "patch", "put", "options", "trace"}
QUEUE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
SETTING = re.compile(r"^%([^%]+)%$")


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def example_settings() -> dict[str, str]:
    return load(ROOT / "local.settings.example.json")["Values"]


def binding_validator(definition: str) -> jsonschema.Draft4Validator:
    schema = load(SCHEMAS / "function.schema.json")
    # The whole-file oneOf is ambiguous for http bindings: validate one binding against its type's definition.
    return jsonschema.Draft4Validator({"definitions": schema["definitions"], "allOf": [{"$ref": f"#/definitions/{definition}"}]})


def triggers(path: Path) -> list[dict[str, Any]]:
    return [b for b in load(path)["bindings"] if b["type"].endswith("Trigger")]


def ids(paths: list[Path]) -> list[str]:
    return [p.parent.name for p in paths]


def test_schemas_the_app_has_function_folders() -> None:
    assert len(FUNCTION_FILES) >= 4


def test_schemas_host_json_validates_against_host_schema() -> None:
    validator = jsonschema.Draft7Validator(load(SCHEMAS / "host.schema.json"))

    errors = [e.message for e in validator.iter_errors(load(ROOT / "host.json"))]

    assert errors == []


def test_schemas_host_json_uses_functions_v4_with_base64_queue_messages() -> None:
    host = load(ROOT / "host.json")

    assert host["version"] == "2.0"
    assert host["extensions"]["queues"]["messageEncoding"] == "base64"


@pytest.mark.parametrize("path", FUNCTION_FILES, ids=ids(FUNCTION_FILES))
def test_schemas_every_binding_validates_against_its_definition(path: Path) -> None:
    for binding in load(path)["bindings"]:
        definition = DEFINITION_FOR_TYPE.get(binding["type"])
        assert definition, f"{path.parent.name}: no schema definition known for binding type {binding['type']}"

        errors = [e.message for e in binding_validator(definition).iter_errors(binding)]

        assert errors == [], f"{path.parent.name}: {binding}"


@pytest.mark.parametrize("path", FUNCTION_FILES, ids=ids(FUNCTION_FILES))
def test_schemas_function_json_has_one_trigger_and_python_entry(path: Path) -> None:
    data = load(path)

    assert len(triggers(path)) == 1
    assert data.get("scriptFile", "__init__.py") == "__init__.py"
    assert data.get("entryPoint", "main").isidentifier()
    for binding in data["bindings"]:
        assert binding["name"] == "$return" or binding["name"].isidentifier()


@pytest.mark.parametrize("path", [p for p in FUNCTION_FILES if triggers(p)[0]["type"] == "httpTrigger"],
                         ids=lambda p: p.parent.name)
def test_schemas_http_trigger_route_auth_and_methods(path: Path) -> None:
    trigger = triggers(path)[0]
    outputs = [b for b in load(path)["bindings"] if b["type"] == "http" and b["direction"] == "out"]

    assert trigger["authLevel"] in {"anonymous", "function", "admin"}
    assert set(trigger["methods"]) <= HTTP_METHODS
    assert not trigger["route"].startswith("/") and not trigger["route"].startswith("api/")
    RouteTemplate.parse(trigger["route"])  # raises on a template the host would reject
    assert len(outputs) == 1


@pytest.mark.parametrize("path", [p for p in FUNCTION_FILES if triggers(p)[0]["type"] == "queueTrigger"],
                         ids=lambda p: p.parent.name)
def test_schemas_queue_trigger_names_a_valid_queue_and_connection(path: Path) -> None:
    trigger = triggers(path)[0]
    settings = example_settings()
    setting = SETTING.match(trigger["queueName"])
    queue_name = settings[setting.group(1)] if setting else trigger["queueName"]

    assert QUEUE_NAME.match(queue_name), queue_name
    assert QUEUE_NAME.match(f"{queue_name}-poison")  # the host's poison queue must be a valid name too
    assert trigger.get("connection", "AzureWebJobsStorage") in settings


@pytest.mark.parametrize("path", [p for p in FUNCTION_FILES if triggers(p)[0]["type"] == "timerTrigger"],
                         ids=lambda p: p.parent.name)
def test_schemas_timer_trigger_schedule_is_a_six_field_ncrontab(path: Path) -> None:
    data = load(path)
    settings = example_settings()
    bindings = [resolve_settings(path.parent.name, b, settings) for b in data["bindings"]]
    spec = FunctionSpec(name=path.parent.name, directory=path.parent, script_file=path.parent / "__init__.py",
                        entry_point="main", bindings=bindings, raw_bindings=data["bindings"])

    schedule = parse_schedule(spec, {})

    assert len(schedule.expression.split()) == 6
    assert isinstance(triggers(path)[0].get("runOnStartup", False), bool)
