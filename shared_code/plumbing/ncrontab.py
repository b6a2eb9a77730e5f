"""NCRONTAB schedules (six fields, seconds first, as Azure Functions timers use): parse, find occurrences."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared_code.plumbing.errors import ConfigError

_MONTHS = {m: i + 1 for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}
_DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}
# (name, lowest, highest, names) for second, minute, hour, day of month, month, day of week.
_FIELDS = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)


@dataclass(frozen=True, slots=True)
class Schedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool  # day-of-month field was "*"
    any_weekday: bool  # day-of-week field was "*"

    def matches_date(self, when: datetime) -> bool:
        if when.month not in self.months:
            return False
        day_ok = when.day in self.days
        weekday_ok = (when.isoweekday() % 7) in self.weekdays
        # As cron does: when both day fields are restricted, either one matching is enough.
        if self.any_day or self.any_weekday:
            return day_ok and weekday_ok
        return day_ok or weekday_ok

    def previous(self, now: datetime) -> datetime:
        """The latest occurrence at or before `now` (whole seconds): the one a firing at `now` belongs to."""
        now = now.replace(microsecond=0)
        day = now
        for _ in range(366 * 8 + 1):  # a 29 February schedule repeats within eight years
            if self.matches_date(day):
                limit = (now.hour, now.minute, now.second) if day.date() == now.date() else (23, 59, 59)
                found = self._latest_time_of_day(limit)
                if found is not None:
                    hour, minute, second = found
                    return day.replace(hour=hour, minute=minute, second=second, microsecond=0)
            day = (day - timedelta(days=1)).replace(hour=23, minute=59, second=59)
        raise ConfigError(f"the schedule {self.expression!r} never fires")

    def _latest_time_of_day(self, limit: tuple[int, int, int]) -> tuple[int, int, int] | None:
        for hour in sorted(self.hours, reverse=True):
            if hour > limit[0]:
                continue
            for minute in sorted(self.minutes, reverse=True):
                if (hour, minute) > limit[:2]:
                    continue
                for second in sorted(self.seconds, reverse=True):
                    if (hour, minute, second) <= limit:
                        return hour, minute, second
        return None


def parse_schedule(expression: str, setting: str = "SurveySchedule") -> Schedule:
    """Parse a six-field NCRONTAB expression; ConfigError names the setting and what is wrong."""
    parts = expression.split()
    if len(parts) != 6:
        raise ConfigError(
            f"setting {setting} must be a six-field NCRONTAB expression "
            f"('{{second}} {{minute}} {{hour}} {{day}} {{month}} {{day-of-week}}'), got {expression!r}"
        )
    sets = []
    for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True):
        try:
            sets.append(_parse_field(part, low, high, names))
        except ValueError as exc:
            raise ConfigError(f"setting {setting}: bad {name} field {part!r} in {expression!r}: {exc}") from None
    return Schedule(expression, *map(frozenset, sets), any_day=parts[3] in ("*", "?"), any_weekday=parts[5] in ("*", "?"))


def _parse_field(text: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if step <= 0:
            raise ValueError("step must be positive")
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = _value(first, names), _value(last, names)
        else:
            start = _value(base, names)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise ValueError(f"values must be within {low}-{high}")
        values.update(range(start, end + 1, step))
    return values


def _value(text: str, names: dict[str, int]) -> int:
    upper = text.strip().upper()
    if upper in names:
        return names[upper]
    if not upper.isdigit():
        raise ValueError(f"{text!r} is not a number")
    return int(upper)
