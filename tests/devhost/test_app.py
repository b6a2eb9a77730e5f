"""devhost reading an app: local.settings.json vs the environment, %Setting% resolution, host.json options."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from devhost.app import AppError, load_app, parse_timespan, resolve_settings
from devhost.run import ensure_local_settings, start_host


def write_app(root: Path, values: dict[str, str], host: dict | None = None) -> None:
    (root / "host.json").write_text(json.dumps(host or {"version": "2.0"}))
    (root / "local.settings.json").write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    folder = root / "AppQueueFn"
    folder.mkdir()
    binding = {"type": "queueTrigger", "direction": "in", "name": "msg", "queueName": "%AppTestQueue%-in"}
    (folder / "function.json").write_text(json.dumps({"bindings": [binding]}))
    (folder / "__init__.py").write_text("def main(msg):\n    pass\n")


def test_app_local_settings_fill_the_environment_but_set_variables_win(tmp_path: Path) -> None:
    write_app(tmp_path, {"AppTestQueue": "from-file", "AppTestOther": "file-only"})
    environ = {"AppTestQueue": "from-env"}

    app = load_app(tmp_path, environ)

    assert environ == {"AppTestQueue": "from-env", "AppTestOther": "file-only"}
    assert app.functions[0].trigger["queueName"] == "from-env-in"
    assert app.functions[0].written("queueName") == "%AppTestQueue%-in"


def test_app_unset_setting_names_function_field_and_setting(tmp_path: Path) -> None:
    write_app(tmp_path, {})

    with pytest.raises(AppError, match=r"Function 'AppQueueFn'.*'queueName'.*%AppTestQueue%"):
        load_app(tmp_path, {})


def test_app_binding_names_are_not_resolved() -> None:
    binding = {"type": "queueTrigger", "name": "%x%", "queueName": "%Q%"}

    assert resolve_settings("F", binding, {"Q": "jobs"}) == {"type": "queueTrigger", "name": "%x%", "queueName": "jobs"}


def test_app_host_json_queue_options_and_defaults(tmp_path: Path) -> None:
    write_app(tmp_path, {"AppTestQueue": "q"}, {"version": "2.0", "extensions": {"queues": {
        "batchSize": 10, "maxPollingInterval": "00:00:02", "visibilityTimeout": "00:01:30", "maxDequeueCount": 2}}})

    options = load_app(tmp_path, {}).host.queues

    assert (options.batch_size, options.new_batch_threshold, options.max_polling_interval) == (10, 5, 2.0)
    assert (options.visibility_timeout, options.max_dequeue_count, options.message_encoding) == (90.0, 2, "base64")


@pytest.mark.parametrize(("text", "seconds"), [("00:00:02", 2.0), ("00:00:00.250", 0.25), ("1.02:00:00", 93600.0)])
def test_app_timespans_read_like_dotnet(text: str, seconds: float) -> None:
    assert parse_timespan(text, what="x") == seconds


def test_run_creates_local_settings_from_the_example_once(tmp_path: Path) -> None:
    (tmp_path / "local.settings.example.json").write_text('{"Values": {"A": "1"}}')

    created = ensure_local_settings(tmp_path)
    (tmp_path / "local.settings.json").write_text('{"Values": {"A": "mine"}}')
    again = ensure_local_settings(tmp_path)

    assert (created, again) == (True, False)
    assert json.loads((tmp_path / "local.settings.json").read_text()) == {"Values": {"A": "mine"}}


def test_run_uses_a_free_port_when_the_wanted_one_is_busy(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0"}))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        host = start_host(tmp_path, port)
        try:
            assert host.url != f"http://localhost:{port}"
        finally:
            host.stop()


def test_run_adds_settings_a_newer_example_has_to_an_existing_local_settings(tmp_path: Path) -> None:
    (tmp_path / "local.settings.example.json").write_text(json.dumps({"Values": {"A": "1", "New": "2"}}))
    (tmp_path / "local.settings.json").write_text(json.dumps({"Values": {"A": "mine"}, "Host": {"LocalHttpPort": 1}}))

    created = ensure_local_settings(tmp_path)

    assert created is False
    assert json.loads((tmp_path / "local.settings.json").read_text()) == {
        "Values": {"A": "mine", "New": "2"}, "Host": {"LocalHttpPort": 1}}
