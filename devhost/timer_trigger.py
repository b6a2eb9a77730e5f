"""Timer triggers: NCRONTAB (six fields, seconds first) or TimeSpan schedules, runOnStartup, past-due via a monitor."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import azure.functions.timer as func_timer
from croniter import CroniterError, croniter

from devhost.app import AppError, FunctionSpec
from devhost.invocation import Function, InvocationFailed

log = logging.getLogger("devhost")

_TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d{1,2}):(\d{2})(?::(\d{2}))?")


@dataclass(frozen=True)
class Schedule:
    """When a timer fires: a cron expression or a fixed interval, in the host's time zone."""

    expression: str
    zone: tzinfo
    interval: timedelta | None = None

    def next_after(self, moment: datetime) -> datetime:
        if self.interval is not None:
            return moment + self.interval
        local = moment.astimezone(self.zone)
        # NCRONTAB has seconds first when there are six fields; five fields are classic cron (the host takes both).
        six = len(self.expression.split()) == 6
        following = croniter(self.expression, local, second_at_beginning=six).get_next(datetime)
        return following.astimezone(UTC)


def host_time_zone(environ: Mapping[str, str] = os.environ) -> tzinfo:
    """UTC unless WEBSITE_TIME_ZONE names an IANA zone (as on Linux plans)."""
    name = environ.get("WEBSITE_TIME_ZONE") or ""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise AppError(f"WEBSITE_TIME_ZONE = {name!r} is not an IANA time zone") from exc


def parse_schedule(spec: FunctionSpec, environ: Mapping[str, str] = os.environ) -> Schedule:
    """The function's schedule, or an AppError naming the function and the setting, never a timer that never fires."""
    value = str(spec.trigger.get("schedule") or "").strip()
    written = spec.written("schedule")
    source = f"schedule '{written}'" + (f" (= {value!r})" if written != value else "")
    zone = host_time_zone(environ)
    span = _TIMESPAN.fullmatch(value)
    if span:
        days, hours, minutes, seconds = (int(g or 0) for g in span.groups())
        interval = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        if interval <= timedelta(0):
            raise AppError(f"Function '{spec.name}': {source} is a zero TimeSpan; the timer would never wait")
        return Schedule(value, zone, interval)
    fields = value.split()
    if len(fields) not in (5, 6):
        raise AppError(f"Function '{spec.name}': {source} is not a valid NCRONTAB expression: it needs six fields "
                       f"'{{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}', found {len(fields)}")
    schedule = Schedule(value, zone)
    try:
        schedule.next_after(datetime.now(UTC))
    except (CroniterError, ValueError, KeyError) as exc:
        raise AppError(f"Function '{spec.name}': {source} is not a valid NCRONTAB expression: {exc}") from exc
    return schedule


class ScheduleMonitor:
    """Last/next occurrence per timer (useMonitor), so a host that was down sees what it missed.

    The real host keeps this in blob storage; locally it lives as long as the process, which
    is what a `devhost` run needs (a restart with a fresh Azurite forgets it either way).
    """

    def __init__(self) -> None:
        self._status: dict[str, dict[str, datetime]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> dict[str, datetime] | None:
        with self._lock:
            return dict(self._status[name]) if name in self._status else None

    def record(self, name: str, last: datetime, following: datetime) -> None:
        with self._lock:
            self._status[name] = {"Last": last, "Next": following, "LastUpdated": datetime.now(UTC)}


def timer_request(past_due: bool, status: dict[str, datetime] | None) -> func_timer.TimerRequest:
    wire = {k: v.isoformat() for k, v in (status or {}).items()}
    return func_timer.TimerRequest(past_due=past_due, schedule_status=wire, schedule={"AdjustForDST": True})


class TimerListener:
    """Fires one function on its schedule in a thread; `stop()` waits for a running invocation."""

    def __init__(self, function: Function, schedule: Schedule, monitor: ScheduleMonitor) -> None:
        self.function = function
        self.schedule = schedule
        self.monitor = monitor
        trigger = function.spec.trigger
        self.run_on_startup = _flag(trigger.get("runOnStartup"))
        self.use_monitor = _flag(trigger.get("useMonitor", True))
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"timer-{function.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def _fire(self, scheduled: datetime, past_due: bool) -> None:
        status = self.monitor.get(self.function.name) if self.use_monitor else None
        reason = f"Timer fired at {datetime.now(UTC).isoformat()}"
        try:
            self.function.invoke(timer_request(past_due, status), reason=reason)
        except InvocationFailed:
            pass  # logged by the invocation; a timer is not retried, it waits for its next occurrence
        if self.use_monitor:
            self.monitor.record(self.function.name, scheduled, self.schedule.next_after(datetime.now(UTC)))

    def _run(self) -> None:
        now = datetime.now(UTC)
        status = self.monitor.get(self.function.name) if self.use_monitor else None
        missed = status is not None and status["Next"] < now
        if missed or self.run_on_startup:
            # A missed occurrence runs now, once, marked past due, as the host's monitor does.
            self._fire(now, past_due=missed)
        following = self.schedule.next_after(datetime.now(UTC))
        log.info("Function '%s': next occurrence %s", self.function.name, following.isoformat())
        while not self._stopping.wait(max(0.0, (following - datetime.now(UTC)).total_seconds())):
            late = datetime.now(UTC) - following
            self._fire(following, past_due=late > timedelta(seconds=15))
            following = self.schedule.next_after(max(following, datetime.now(UTC)))


def _flag(value: object) -> bool:
    return value is True or str(value).lower() == "true"
