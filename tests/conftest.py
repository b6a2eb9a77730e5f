"""Fixtures: a real Azurite for the whole session, a fresh set of tables and queues per test,
the Bot Framework stubs over HTTP, and the app's settings pointed at all of them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devhost import azurite as azurite_launcher
from shared_code.plumbing.settings import storage_names
from stubs.connector import ConnectorStub
from stubs.token import TokenStub

# `telemetry`: spans and metrics in memory (the SDK is imported only by the tests that ask for it).
pytest_plugins = ["tests.support.otel"]


@pytest.fixture(scope="session")
def storage_connection() -> Iterator[str]:
    """The Azurite connection string: the one this process runs under (`python -m devhost.azurite -- pytest`),
    or one started here for this process alone: under `make test` each pytest-xdist worker has its own."""
    with azurite_launcher.running() as connection:
        yield connection


@pytest.fixture
def connector() -> Iterator[ConnectorStub]:
    with ConnectorStub() as stub:
        yield stub


@pytest.fixture
def token_stub() -> Iterator[TokenStub]:
    with TokenStub("test-app-id", "test-app-password") as stub:
        yield stub


@dataclass
class AppEnv:
    """The app's settings for one test: unique storage names, stubs' URLs."""

    values: dict[str, str]
    monkeypatch: pytest.MonkeyPatch

    def set(self, **values: str) -> None:
        from shared_code.app import services

        for key, value in values.items():
            self.values[key] = value
            self.monkeypatch.setenv(key, value)
        services.reset()


@pytest.fixture
def app_env(storage_connection: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppEnv]:
    """Settings for a local-mode app (no MicrosoftAppId) on fresh tables and a fresh queue."""
    from shared_code.app import services

    suffix = uuid.uuid4().hex[:10]
    values = {
        "AzureWebJobsStorage": storage_connection,
        "MicrosoftAppId": "",
        "MicrosoftAppPassword": "",
        **storage_names(suffix),
        "TrustedServiceUrls": "",
        "PublicBaseUrl": "http://localhost:7071",
        # Set, even empty, so a local.settings.json copied into the environment cannot change a test.
        "SurveyQuestions": "",
        "SurveySchedule": "0 0 9 * * 1-5",
        "ScheduledNotificationsSchedule": "0 */5 * * * *",
        "PurgeSchedule": "0 30 3 * * *",
        "SurveyAudience": "all",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    services.reset()
    yield AppEnv(values, monkeypatch)
    services.reset()


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own hook, which `_name_groups` completes
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long scenarios (marked `slow`) first: run in parallel (`make test` uses pytest-xdist), each worker
    takes one as it frees up, so none is left to start at the end and hold up the whole run alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: the rest keep their order
    if getattr(config.option, "loadgroup", False):
        _name_groups(items)


def _name_groups(items: list[pytest.Item]) -> None:
    """Each test of an `xdist_group` named `<node id>@<group>`, which is how `--dist loadgroup` finds its group.

    pytest-xdist 3.8 writes that name into `item._nodeid`, which pytest 9.2 no longer reads (its node ids are
    structured: pytest-dev/pytest-xdist#1386): nothing failed, every test was scheduled alone, and each worker
    that ran a deployment-zip test built the zip again. Until pytest-xdist names the group itself, it is
    written here where pytest 9.2 keeps a node's id; a name that already ends with the group is left as it is.
    """
    try:
        from _pytest.nodeid import coerce_node_id  # pytest 9.2's structured ids; older ones take xdist's rename
    except ImportError:
        return
    for item in items:
        groups = {str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                  for mark in item.iter_markers("xdist_group")}
        suffix = "@" + "_".join(sorted(groups))
        if groups and not item.nodeid.endswith(suffix):
            item._id = coerce_node_id(item.nodeid + suffix)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The authors' page's browser tests need Debian's Chromium: where it is missing they are skipped, and the
    run says so at its end."""
    from tests.portal.chromium import chromium_missing

    reason = chromium_missing()
    if reason:
        terminalreporter.write_line(f"The authors' page's browser tests were skipped: {reason}.", yellow=True)
