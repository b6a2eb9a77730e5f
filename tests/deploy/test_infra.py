"""The ARM template in infra/ and host.json: what Azure is told matches what the code reads."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from deploy import build as builder
from shared_code.plumbing.settings import SETTING_NAMES, Settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "main.json"
# The official schema, kept in the repo (tests/schemas/README.md says where it comes from).
HOST_SCHEMA = ROOT / "tests" / "schemas" / "host.schema.json"

PLATFORM_PREFIXES = ("FUNCTIONS_", "WEBSITE_", "APPLICATIONINSIGHTS_", "PYTHON_APPLICATIONINSIGHTS_", "SCM_")
SECRET_WORDS = ("password", "secret", "key", "token", "connectionstring")
# Read by the code, left unset in Azure on purpose: a connection string (with its key) is for Azurite and local
# runs, Azure uses the identity-based AzureWebJobsStorage__*; a password exists only for SingleTenant with a
# secret, and the template's bot is its managed identity.
# WEBSITE_AUTH_ENABLED is App Service's own: the platform sets it when authentication is on.
SET_BY_PLATFORM = {"WEBSITE_AUTH_ENABLED"}
NOT_SET_IN_AZURE = {"AzureWebJobsStorage", "MicrosoftAppPassword", *SET_BY_PLATFORM}
# Set for the Functions host (its blob leases) and for App Service Authentication (the managed identity it signs
# authors in with, instead of a client secret), not read by the app.
HOST_ONLY = {"AzureWebJobsStorage__blobServiceUri", "OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID"}
# Literal values that are the deployment's choice, not the code's default (which suits a local run).
DEPLOYMENT_CHOICES = {"MicrosoftAppType": "UserAssignedMSI", "AzureWebJobsStorage__credential": "managedidentity"}
# App settings and site properties the Flex Consumption plan rejects or ignores (runtime and scale live in
# functionAppConfig; the package in the deployment container).
FLEX_REJECTED_SETTINGS = {
    "FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY", "FUNCTIONS_WORKER_PROCESS_COUNT", "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED",
    "SCM_DO_BUILD_DURING_DEPLOYMENT", "ENABLE_ORYX_BUILD", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE", "WEBSITE_CONTENTOVERVNET", "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION", "WEBSITE_VNET_ROUTE_ALL", "WEBSITE_DNS_SERVER", "WEBSITE_NODE_DEFAULT_VERSION",
}
FLEX_REJECTED_SITE_CONFIG = {
    "linuxFxVersion", "windowsFxVersion", "alwaysOn", "ftpsState", "functionAppScaleLimit",
    "minimumElasticInstanceCount", "preWarmedInstanceCount", "use32BitWorkerProcess", "netFrameworkVersion",
    "javaVersion", "powerShellVersion",
}
# Built-in role ids (the same in every tenant).
ROLE_IDS = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}
IDENTITY = "reference(variables('identityId'), '2023-01-31')"


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
    app_names = {name for name in template_names if not name.startswith(PLATFORM_PREFIXES)} - HOST_ONLY
    assert app_names == set(SETTING_NAMES.values()) - NOT_SET_IN_AZURE
    assert NOT_SET_IN_AZURE <= set(SETTING_NAMES.values())  # still read, only not set in Azure
    assert not NOT_SET_IN_AZURE & template_names
    assert HOST_ONLY <= template_names


def test_infra_setting_names_cover_every_settings_field() -> None:
    assert set(SETTING_NAMES) == {f.name for f in fields(Settings)}


def test_infra_local_settings_example_lists_the_same_settings() -> None:
    values = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert {name for name in values if not name.startswith(PLATFORM_PREFIXES)} == set(SETTING_NAMES.values()) - SET_BY_PLATFORM


def test_infra_literal_settings_equal_the_code_defaults() -> None:
    # A table or queue name that differs between template and code would split the data in two.
    template = _template()
    defaults = Settings()
    checked = []
    for attr, name in SETTING_NAMES.items():
        if name in NOT_SET_IN_AZURE:
            continue
        value = _resolve(template, _app_settings(template)[name])
        if value is None:
            continue
        if name in DEPLOYMENT_CHOICES:
            assert value == DEPLOYMENT_CHOICES[name], name
            checked.append(name)
            continue
        default = getattr(defaults, attr)
        assert value == (str(default) if not isinstance(default, tuple) else ",".join(default)), name
        checked.append(name)
    assert {"AddressesTableName", "JobsQueueName", "ToChannelFromBotOAuthScope", "ToBotFromChannelTokenIssuer"} <= set(checked)


def _function_app_config(template: dict[str, Any]) -> dict[str, Any]:
    return _one(template, "Microsoft.Web/sites")["properties"]["functionAppConfig"]


def _parameter_of(expression: str) -> str:
    match = re.fullmatch(r"\[parameters\('(\w+)'\)\]", expression)
    assert match, f"{expression} is not a parameter"
    return match.group(1)


def test_infra_function_app_is_linux_on_the_flex_consumption_plan() -> None:
    template = _template()
    site = _one(template, "Microsoft.Web/sites")
    plan = _one(template, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True
    assert "linux" in site["kind"] and "functionapp" in site["kind"]
    assert site["properties"]["httpsOnly"] is True
    assert site["properties"]["serverFarmId"] == "[resourceId('Microsoft.Web/serverfarms', variables('planName'))]"
    # functionAppConfig exists from Microsoft.Web 2023-12-01 on.
    assert site["apiVersion"] >= "2023-12-01" and plan["apiVersion"] >= "2023-12-01"


def test_infra_runtime_is_the_interpreter_the_zip_is_built_for() -> None:
    template = _template()
    runtime = _function_app_config(template)["runtime"]
    assert runtime["name"] == "python"
    assert _resolve(template, runtime["version"]) == builder.TARGET_PYTHON == "3.13"
    assert builder.TARGET_ABI == "cp313"


def test_infra_sets_none_of_the_settings_flex_rejects() -> None:
    template = _template()
    site = _one(template, "Microsoft.Web/sites")
    assert sorted(FLEX_REJECTED_SETTINGS & set(_app_settings(template))) == []
    assert sorted(FLEX_REJECTED_SITE_CONFIG & set(site["properties"]["siteConfig"])) == []
    assert not [name for name in _app_settings(template) if name.startswith("WEBSITE_CONTENT")]


def test_infra_scale_and_concurrency_are_parameters_that_say_why() -> None:
    template = _template()
    scale = _function_app_config(template)["scaleAndConcurrency"]
    names = [_parameter_of(scale["maximumInstanceCount"]), _parameter_of(scale["instanceMemoryMB"]),
             _parameter_of(scale["triggers"]["http"]["perInstanceConcurrency"])]
    for name in names:
        spec = template["parameters"][name]
        assert spec["type"] == "int" and "defaultValue" in spec, name
        assert len(spec["metadata"]["description"]) > 80, f"{name}: say why its default is what it is"
    assert template["parameters"]["instanceMemoryMB"]["defaultValue"] in (512, 2048, 4096)


def test_infra_always_ready_instances_cover_the_messages_function() -> None:
    template = _template()
    always_ready = _function_app_config(template)["scaleAndConcurrency"]["alwaysReady"]
    # Flex scales HTTP triggers as one group, "http": /api/messages is in it.
    assert "createObject('name', 'http', 'instanceCount', parameters('alwaysReadyHttpInstances'))" in always_ready
    spec = template["parameters"]["alwaysReadyHttpInstances"]
    assert spec["type"] == "int" and spec["minValue"] == 0 and spec["defaultValue"] >= 1
    bindings = json.loads((ROOT / "MessagesFunction" / "function.json").read_text())["bindings"]
    assert bindings[0]["type"] == "httpTrigger"


def test_infra_package_runs_from_the_deployment_container_read_by_the_identity() -> None:
    template = _template()
    storage = _function_app_config(template)["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert "variables('deploymentContainer')" in storage["value"] and "primaryEndpoints.blob" in storage["value"]
    assert storage["authentication"] == {"type": "UserAssignedIdentity",
                                         "userAssignedIdentityResourceId": "[variables('identityId')]"}
    containers = _resources(template, "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert [c["name"] for c in containers] == [
        "[format('{0}/default/{1}', parameters('storageAccountName'), variables('deploymentContainer'))]"]


def test_infra_storage_connection_is_the_user_assigned_identity() -> None:
    template = _template()
    settings = _app_settings(template)
    site = _one(template, "Microsoft.Web/sites")
    endpoints = "reference(variables('storageId'), '2023-05-01').primaryEndpoints"
    for service in ("blob", "queue", "table"):
        assert settings[f"AzureWebJobsStorage__{service}ServiceUri"] == f"[{endpoints}.{service}]"
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == f"[{IDENTITY}.clientId]"
    assert site["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {"[variables('identityId')]": {}}}
    account = _one(template, "Microsoft.Storage/storageAccounts")
    assert account["properties"]["allowSharedKeyAccess"] is False
    assert account["properties"]["defaultToOAuthAuthentication"] is True


def test_infra_role_assignments_cover_every_data_plane_call() -> None:
    template = _template()
    variables = template["variables"]
    defaults = Settings()
    # What the app and its host read and write, each with the role it needs on the account that holds it.
    calls = {f"table {name}": "Storage Table Data Contributor" for name in (
        defaults.addresses_table, defaults.dialog_state_table, defaults.survey_answers_table,
        defaults.deliveries_table, defaults.notifications_table, defaults.acknowledgements_table,
        defaults.teams_table)}
    calls |= {
        f"queue {defaults.jobs_queue}": "Storage Queue Data Contributor",  # trigger, fan-out, delayed jobs
        f"queue {defaults.jobs_queue}-poison": "Storage Queue Data Contributor",  # host and jobs.send_to_poison
        "blob host leases (azure-webjobs-hosts)": "Storage Blob Data Owner",
        f"blob {variables['deploymentContainer']} (the package)": "Storage Blob Data Owner",
    }
    assert set(variables["tables"]) == {c.split(" ", 1)[1] for c in calls if c.startswith("table ")}
    assert {variables["jobsQueue"], variables["jobsPoisonQueue"]} == {c.split(" ", 1)[1] for c in calls if c.startswith("queue ")}

    granted: dict[str, set[str]] = {}
    for assignment in _resources(template, "Microsoft.Authorization/roleAssignments"):
        assert assignment["properties"]["principalId"] == f"[{IDENTITY}.principalId]"
        assert assignment["properties"]["principalType"] == "ServicePrincipal"
        role_ids = {variables["roles"][n] for n in variables["storageRoles"]} if "copy" in assignment else {
            variables["roles"][re.search(r"variables\('roles'\)\.(\w+)", assignment["properties"]["roleDefinitionId"]).group(1)]}
        for role_id in role_ids:
            granted.setdefault(assignment["scope"], set()).add(ROLE_IDS[role_id])
    account_scope = "[format('Microsoft.Storage/storageAccounts/{0}', parameters('storageAccountName'))]"
    # Every table, queue and container above is a child of the template's one storage account.
    assert {role for role in calls.values()} <= granted[account_scope]
    assert granted[account_scope] == set(calls.values())  # nothing broader (no control plane, no keys)
    assert granted["[format('Microsoft.Insights/components/{0}', variables('insightsName'))]"] == {
        "Monitoring Metrics Publisher"}  # Entra-authenticated telemetry


def test_infra_secrets_are_secure_parameters_without_defaults() -> None:
    template = _template()
    for name, spec in template["parameters"].items():
        looks_secret = any(word in name.lower() for word in SECRET_WORDS)
        if looks_secret or spec["type"].lower().startswith("secure"):
            assert spec["type"].lower() in ("securestring", "secureobject"), name
            assert "defaultValue" not in spec, f"secret parameter {name} has a default"
    text = TEMPLATE.read_text()
    assert not re.search(r"AccountKey=[A-Za-z0-9+/]{20,}", text)
    assert not re.search(r"\beyJ[\w-]{10,}\.", text)


def test_infra_holds_no_key_secret_or_list_keys() -> None:
    template = _template()
    text = TEMPLATE.read_text()
    # No function that reads a key or secret out of a resource, and nothing that takes one in.
    assert not re.search(r"(?i)\blist(Keys|AccountSas|ServiceSas|Secrets|ConnectionStrings|Credentials)?\(", text)
    assert "AccountKey" not in text and "SharedAccessKey" not in text
    assert [n for n, spec in template["parameters"].items() if spec["type"].lower().startswith("secure")] == []
    settings = _app_settings(template)
    looks_secret = [n for n in settings if any(w in n.lower().replace("_", "") for w in SECRET_WORDS)
                    and not settings[n].startswith("https://")]  # ToBotFromChannelTokenIssuer is a URL
    # The one connection string is Application Insights': it names the endpoint, and ingestion needs Entra.
    assert looks_secret == ["APPLICATIONINSIGHTS_CONNECTION_STRING"]
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == \
        f"[format('ClientId={{0}};Authorization=AAD', {IDENTITY}.clientId)]"
    assert _one(template, "Microsoft.Insights/components")["properties"]["DisableLocalAuth"] is True
    assert "MicrosoftAppPassword" not in settings


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
    settings = _app_settings(template)
    # The bot is the user-assigned identity, and the app authenticates as the same one.
    assert props["msaAppType"] == settings["MicrosoftAppType"] == "UserAssignedMSI"
    assert props["msaAppId"] == settings["MicrosoftAppId"] == f"[{IDENTITY}.clientId]"
    assert props["msaAppTenantId"] == settings["MicrosoftAppTenantId"] == f"[{IDENTITY}.tenantId]"
    assert props["msaAppMSIResourceId"] == "[variables('identityId')]"
    assert template["outputs"]["botAppId"]["value"] == settings["MicrosoftAppId"]
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
    assert "createArray(variables('jobsQueue'), variables('jobsPoisonQueue'))[copyIndex()]" in queue["name"]
    assert queue["copy"]["count"] == 2
    assert template["variables"]["jobsQueue"] == Settings().jobs_queue
    assert template["variables"]["jobsPoisonQueue"] == f"{Settings().jobs_queue}-poison"
    defaults = Settings()
    assert set(template["variables"]["tables"]) == {
        defaults.addresses_table, defaults.dialog_state_table, defaults.survey_answers_table,
        defaults.deliveries_table, defaults.notifications_table, defaults.acknowledgements_table,
        defaults.teams_table,
    }


def test_infra_example_parameters_are_template_parameters() -> None:
    example = json.loads((ROOT / "infra" / "main.parameters.example.json").read_text())["parameters"]
    assert set(example) <= set(_template()["parameters"])


def test_host_json_is_valid_against_the_official_schema() -> None:
    if not HOST_SCHEMA.is_file():
        pytest.fail(f"the official host.json schema is expected at {HOST_SCHEMA}")
    schema = json.loads(HOST_SCHEMA.read_text())
    host = json.loads((ROOT / "host.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(host), key=lambda e: list(e.path))
    assert [f"{list(e.path)}: {e.message}" for e in errors] == []


def test_infra_turns_on_the_python_workers_opentelemetry_with_entra_authenticated_ingestion() -> None:
    template = _template()
    settings = _app_settings(template)
    # The worker configures the Azure Monitor distro itself (the app's code uses the OpenTelemetry API only).
    assert settings["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] == "true"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].endswith("Authorization=AAD', " + IDENTITY + ".clientId)]")
    assert _one(template, "Microsoft.Insights/components")["properties"]["DisableLocalAuth"] is True


def test_host_json_sends_the_hosts_telemetry_as_opentelemetry() -> None:
    # The host's own logs and traces in OpenTelemetry form, so its spans and the worker's join one trace.
    assert json.loads((ROOT / "host.json").read_text())["telemetryMode"] == "OpenTelemetry"


def test_host_json_keeps_every_failure_and_the_outcome_lines() -> None:
    logging_ = json.loads((ROOT / "host.json").read_text())["logging"]
    sampling = logging_["applicationInsights"]["samplingSettings"]
    # Sampling thins traces under load; requests and exceptions must all reach Application Insights.
    assert {"Request", "Exception"} <= set(sampling["excludedTypes"].split(";"))
    assert logging_["logLevel"]["Function"] == "Information"  # the INFO outcome lines


def test_infra_puts_the_authors_page_behind_app_service_authentication_but_not_the_bot_or_the_keyed_api() -> None:
    auth = _one(_template(), "Microsoft.Web/sites/config")
    validation = auth["properties"]["globalValidation"]

    assert "/authsettingsV2'" in auth["name"] and "portalClientId" in auth["condition"]
    assert validation["requireAuthentication"] and validation["unauthenticatedClientAction"] == "RedirectToLoginPage"
    assert {"/api/messages", "/api/notify", "/api/notify/*"} <= set(validation["excludedPaths"])
    assert not any(path.startswith("/api/portal") for path in validation["excludedPaths"])
    # The app checks the ID token Easy Auth forwards: the token store must be on. No client secret: the identity.
    assert auth["properties"]["login"]["tokenStore"]["enabled"] is True
    registration = auth["properties"]["identityProviders"]["azureActiveDirectory"]["registration"]
    assert registration["clientSecretSettingName"] == "OVERRIDE_USE_MI_FIC_ASSERTION_CLIENTID"
