"""The ARM template in infra/ and host.json: what Azure is told matches what the code reads."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shared_code.plumbing.settings import SETTING_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "main.json"
# The official schema, kept in the repo (tests/schemas/README.md says where it comes from).
HOST_SCHEMA = ROOT / "tests" / "schemas" / "host.schema.json"

PLATFORM_PREFIXES = ("FUNCTIONS_", "WEBSITE_", "APPLICATIONINSIGHTS_", "SCM_")
SECRET_WORDS = ("password", "secret", "key", "token", "connectionstring")


def _template() -> dict[str, Any]:
    return json.loads(TEMPLATE.read_text(encoding="utf-8"))


def _resources(template: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    return [r for r in template["resources"] if r["type"] == type_]


def _one(template: dict[str, Any], type_: str) -> dict[str, Any]:
    found = _resources(template, type_)
    assert len(found) == 1, f"expected one {type_}, found {len(found)}"
    return found[0]


def _app_settings(template: dict[str, Any]) -> dict[str, str]:
    pairs = _one(template, "Microsoft.Web/sites")["properties"]["siteConfig"]["appSettings"]
    names = [p["name"] for p in pairs]
    assert len(names) == len(set(names)), f"an app setting is set twice: {names}"
    return {p["name"]: p["value"] for p in pairs}


def _resolve(template: dict[str, Any], value: str) -> str | None:
    """A literal, or `[variables('x')]` / `[variables('x')[i]]` over literal variables; None for anything else."""
    if not value.startswith("["):
        return value
    match = re.fullmatch(r"\[variables\('(\w+)'\)(?:\[(\d+)\])?\]", value)
    if not match:
        return None
    resolved = template["variables"][match.group(1)]
    if match.group(2) is not None:
        resolved = resolved[int(match.group(2))]
    return resolved if isinstance(resolved, str) and not resolved.startswith("[") else None


def test_infra_template_sets_every_setting_the_code_reads_and_no_other() -> None:
    template_names = set(_app_settings(_template()))
    app_names = {name for name in template_names if not name.startswith(PLATFORM_PREFIXES)}
    assert app_names == set(SETTING_NAMES.values())
    assert "AzureWebJobsStorage" in template_names


def test_infra_setting_names_cover_every_settings_field() -> None:
    assert set(SETTING_NAMES) == {f.name for f in fields(Settings)}


def test_infra_local_settings_example_lists_the_same_settings() -> None:
    values = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert {name for name in values if not name.startswith(PLATFORM_PREFIXES)} == set(SETTING_NAMES.values())


def test_infra_literal_settings_equal_the_code_defaults() -> None:
    # A table or queue name that differs between template and code would split the data in two.
    template = _template()
    defaults = Settings()
    checked = []
    for attr, name in SETTING_NAMES.items():
        value = _resolve(template, _app_settings(template)[name])
        if value is None:
            continue
        default = getattr(defaults, attr)
        assert value == (str(default) if not isinstance(default, tuple) else ",".join(default)), name
        checked.append(name)
    assert {"AddressesTableName", "JobsQueueName", "ToChannelFromBotOAuthScope", "ToBotFromChannelTokenIssuer"} <= set(checked)


def test_infra_function_app_is_linux_python_311_on_functions_v4() -> None:
    template = _template()
    site = _one(template, "Microsoft.Web/sites")
    plan = _one(template, "Microsoft.Web/serverfarms")
    settings = _app_settings(template)
    assert "linux" in site["kind"] and "functionapp" in site["kind"]
    assert site["properties"]["siteConfig"]["linuxFxVersion"] == "Python|3.11"
    assert site["properties"]["reserved"] is True and plan["properties"]["reserved"] is True
    assert plan["sku"] == {"name": "Y1", "tier": "Dynamic"}
    assert site["properties"]["httpsOnly"] is True
    assert settings["FUNCTIONS_EXTENSION_VERSION"] == "~4"
    assert settings["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert settings["SCM_DO_BUILD_DURING_DEPLOYMENT"] == "false"  # the zip carries its Linux wheels
    assert "Microsoft.Insights/components" in settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]
    assert "listKeys(" in settings["AzureWebJobsStorage"]


def test_infra_secrets_are_secure_parameters_without_defaults() -> None:
    template = _template()
    for name, spec in template["parameters"].items():
        looks_secret = any(word in name.lower() for word in SECRET_WORDS)
        if looks_secret or spec["type"].lower().startswith("secure"):
            assert spec["type"].lower() in ("securestring", "secureobject"), name
            assert "defaultValue" not in spec, f"secret parameter {name} has a default"
    assert _app_settings(template)["MicrosoftAppPassword"] == "[parameters('microsoftAppPassword')]"
    # No secret may sit in the template as text: keys come from listKeys, the password from a parameter.
    text = TEMPLATE.read_text()
    assert not re.search(r"AccountKey=[A-Za-z0-9+/]{20,}", text)
    assert not re.search(r"\beyJ[\w-]{10,}\.", text)


def test_infra_every_referenced_parameter_and_variable_exists() -> None:
    template = _template()
    text = TEMPLATE.read_text()
    assert set(re.findall(r"parameters\('(\w+)'\)", text)) <= set(template["parameters"])
    assert set(re.findall(r"variables\('(\w+)'\)", text)) <= set(template["variables"])
    for name, spec in template["parameters"].items():
        if "defaultValue" in spec and "allowedValues" in spec:
            assert spec["defaultValue"] in spec["allowedValues"], name


def test_infra_bot_points_at_the_messages_function() -> None:
    template = _template()
    bot = _one(template, "Microsoft.BotService/botServices")
    assert bot["kind"] == "azurebot"
    assert bot["location"] == "global"
    assert bot["sku"]["name"] == "[parameters('botSku')]"
    assert set(template["parameters"]["botSku"]["allowedValues"]) == {"F0", "S1"}
    props = bot["properties"]
    assert props["msaAppId"] == "[parameters('microsoftAppId')]"
    assert props["msaAppType"] == "[parameters('microsoftAppType')]"
    assert "parameters('microsoftAppTenantId')" in props["msaAppTenantId"]
    endpoint = props["endpoint"]
    assert endpoint == "[variables('messagesEndpoint')]"
    expression = template["variables"]["messagesEndpoint"]
    assert expression == "[format('https://{0}.azurewebsites.net/api/messages', parameters('appName'))]"
    assert template["outputs"]["messagesEndpoint"]["value"] == endpoint
    # The same route the function binds: POST /api/messages.
    binding = json.loads((ROOT / "MessagesFunction" / "function.json").read_text())["bindings"][0]
    host = json.loads((ROOT / "host.json").read_text())
    assert f"/{host['extensions']['http']['routePrefix']}/{binding['route']}" == "/api/messages"


def test_infra_creates_the_queue_and_tables_the_code_uses() -> None:
    template = _template()
    queue = _one(template, "Microsoft.Storage/storageAccounts/queueServices/queues")
    assert queue["name"].endswith("variables('jobsQueue'))]")
    assert template["variables"]["jobsQueue"] == Settings().jobs_queue
    defaults = Settings()
    assert set(template["variables"]["tables"]) == {
        defaults.addresses_table, defaults.dialog_state_table, defaults.survey_answers_table,
        defaults.deliveries_table, defaults.notifications_table, defaults.teams_table,
    }


def test_host_json_is_valid_against_the_official_schema() -> None:
    if not HOST_SCHEMA.is_file():
        pytest.fail(f"the official host.json schema is expected at {HOST_SCHEMA}")
    schema = json.loads(HOST_SCHEMA.read_text())
    host = json.loads((ROOT / "host.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(host), key=lambda e: list(e.path))
    assert [f"{list(e.path)}: {e.message}" for e in errors] == []


def test_host_json_keeps_every_failure_and_the_outcome_lines() -> None:
    logging_ = json.loads((ROOT / "host.json").read_text())["logging"]
    sampling = logging_["applicationInsights"]["samplingSettings"]
    # Sampling thins traces under load; requests and exceptions must all reach Application Insights.
    assert {"Request", "Exception"} <= set(sampling["excludedTypes"].split(";"))
    assert logging_["logLevel"]["Function"] == "Information"  # the INFO outcome lines
