"""devhost timer triggers: runOnStartup, NCRONTAB with seconds, the admin endpoint, bad schedules."""

from __future__ import annotations

import json
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from devhost.app import AppError
from devhost.host import Host
from devhost.timer_trigger import ScheduleMonitor

RECORDER = """
    import json
    import pathlib

    def main(timer):
        line = {"past_due": timer.past_due, "status": timer.schedule_status}
        with open(pathlib.Path(__file__).parent / "fires.jsonl", "a") as out:
            out.write(json.dumps(line) + "\\n")
"""

YEARLY = "0 0 0 1 1 *"  # never fires during a test


def make_app(root: Path, name: str, schedule: str, run_on_startup: bool = False) -> Path:
    (root / "host.json").write_text(json.dumps({"version": "2.0"}))
    folder = root / name
    folder.mkdir()
    binding = {"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": schedule,
               "runOnStartup": run_on_startup, "useMonitor": True}
    (folder / "function.json").write_text(json.dumps({"scriptFile": "__init__.py", "bindings": [binding]}))
    (folder / "__init__.py").write_text(textwrap.dedent(RECORDER))
    return folder / "fires.jsonl"


def fires(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for_fires(path: Path, count: int, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(fires(path)) < count:
        time.sleep(0.05)
    return fires(path)


def test_timer_run_on_startup_runs_once_at_start(tmp_path: Path) -> None:
    log = make_app(tmp_path, "TimerStartupFn", YEARLY, run_on_startup=True)
    with Host(tmp_path, port=0):
        wait_for_fires(log, 1)
        time.sleep(0.3)

    assert [f["past_due"] for f in fires(log)] == [False]


def test_timer_without_run_on_startup_does_not_run_at_start(tmp_path: Path) -> None:
    log = make_app(tmp_path, "TimerQuietFn", YEARLY)
    with Host(tmp_path, port=0):
        time.sleep(0.3)

    assert fires(log) == []


def test_timer_six_field_schedule_fires_every_second(tmp_path: Path) -> None:
    log = make_app(tmp_path, "TimerEverySecondFn", "* * * * * *")
    with Host(tmp_path, port=0):
        got = wait_for_fires(log, 2, timeout=3.5)

    assert len(got) >= 2
    assert got[1]["status"]["Last"] < got[1]["status"]["Next"]  # the monitor's status reaches the function


def test_timer_admin_endpoint_runs_function_now(tmp_path: Path) -> None:
    log = make_app(tmp_path, "TimerAdminFn", YEARLY)
    with Host(tmp_path, port=0) as host:
        response = requests.post(f"{host.url}/admin/functions/timeradminfn", json={"input": ""}, timeout=5)
        got = wait_for_fires(log, 1)

    assert (response.status_code, response.content) == (202, b"")
    assert [f["past_due"] for f in got] == [False]


def test_timer_admin_endpoint_unknown_function_is_404_json(tmp_path: Path) -> None:
    make_app(tmp_path, "TimerKnownFn", YEARLY)
    with Host(tmp_path, port=0) as host:
        response = requests.post(f"{host.url}/admin/functions/Nope", json={"input": ""}, timeout=5)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"


@pytest.mark.parametrize("bad", ["not a schedule", "0 0 25 * * *", "* * * *", "0 0 9 * * 1-5 2026"])
def test_timer_bad_schedule_fails_at_start_naming_function_and_setting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    make_app(tmp_path, "TimerBadFn", "%DevhostTestSchedule%")
    monkeypatch.setenv("DevhostTestSchedule", bad)

    with pytest.raises(AppError) as raised:
        Host(tmp_path, port=0).start()

    assert "TimerBadFn" in str(raised.value)
    assert "%DevhostTestSchedule%" in str(raised.value)
    assert repr(bad) in str(raised.value)


def test_timer_unset_schedule_setting_fails_at_start_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_app(tmp_path, "TimerUnsetFn", "%DevhostUnsetSchedule%")
    monkeypatch.delenv("DevhostUnsetSchedule", raising=False)

    with pytest.raises(AppError, match=r"TimerUnsetFn.*DevhostUnsetSchedule"):
        Host(tmp_path, port=0).start()


def test_timer_missed_occurrence_runs_at_start_as_past_due(tmp_path: Path) -> None:
    log = make_app(tmp_path, "TimerMissedFn", YEARLY)
    monitor = ScheduleMonitor()
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    monitor.record("TimerMissedFn", an_hour_ago - timedelta(days=1), an_hour_ago)  # the host was down then

    with Host(tmp_path, port=0, monitor=monitor):
        got = wait_for_fires(log, 1)

    assert [f["past_due"] for f in got] == [True]
