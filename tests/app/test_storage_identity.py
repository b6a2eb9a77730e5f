"""Keyless storage: in Azure the app's tables and queue use its managed identity (the host's AzureWebJobsStorage__*
settings); on Azurite and locally the connection string, without ever importing azure-identity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared_code.app.services import Services
from shared_code.plumbing import errors
from shared_code.plumbing.settings import load_settings
from stubs.managed_identity import STORAGE_RESOURCE, ManagedIdentityStub

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID = "6f1c0f5e-0000-4000-8000-00000000b07a"
IDENTITY_STORAGE = {
    "AzureWebJobsStorage__tableServiceUri": "https://stproactive.table.core.windows.net",
    "AzureWebJobsStorage__queueServiceUri": "https://stproactive.queue.core.windows.net",
    "AzureWebJobsStorage__credential": "managedidentity",
    "AzureWebJobsStorage__clientId": CLIENT_ID,
}


def test_identity_storage_clients_use_the_service_uris_and_the_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    with ManagedIdentityStub(CLIENT_ID) as identity:
        for name, value in identity.environment().items():
            monkeypatch.setenv(name, value)
        app = Services(load_settings(IDENTITY_STORAGE))

        table = app.table_service.get_table_client("Deliveries")
        queue = app.queue()

        assert table.url.startswith("https://stproactive.table.core.windows.net")
        assert queue.url == "https://stproactive.queue.core.windows.net/proactive-jobs"
        assert app.storage_credential.get_token(f"{STORAGE_RESOURCE}/.default").token
        assert identity.issued_for == [(CLIENT_ID, STORAGE_RESOURCE)]  # the user-assigned identity, not another


def test_connection_string_storage_never_imports_azure_identity(storage_connection: str) -> None:
    # A fresh interpreter: the cold-start path of a local run builds both clients and loads no azure.identity.
    code = (
        "import json, sys\n"
        "from shared_code.app import services\n"
        "app = services.get()\n"
        "app.table_service.get_table_client('t'); app.queue()\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('azure.identity', 'msal')))))\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "AzureWebJobsStorage": storage_connection, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize(("missing", "named"), [
    ("AzureWebJobsStorage__queueServiceUri", "AzureWebJobsStorage__queueServiceUri"),
    ("AzureWebJobsStorage__tableServiceUri", "AzureWebJobsStorage__tableServiceUri"),
    ("AzureWebJobsStorage__credential", "AzureWebJobsStorage__credential must be managedidentity"),
])
def test_incomplete_identity_storage_names_the_missing_setting(missing: str, named: str) -> None:
    values = {k: v for k, v in IDENTITY_STORAGE.items() if k != missing}
    with pytest.raises(errors.ConfigError, match=named):
        load_settings(values)
