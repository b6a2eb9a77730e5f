"""NCRONTAB schedules: parsing errors name the setting; previous occurrences agree with croniter."""

from __future__ import annotations

from datetime import datetime

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from shared_code.plumbing.errors import ConfigError
from shared_code.plumbing.ncrontab import parse_schedule

EXPRESSIONS = [
    "0 0 9 * * 1-5",
    "0 */5 * * * *",
    "*/10 * * * * *",
    "30 15 8,20 * * *",
    "0 0 0 1 * *",
    "0 0 12 * JAN-MAR MON",
    "0 0 0 29 2 *",
    "15 30 6 13 * 5",
    "0 0 9-17/2 * * SUN,SAT",
]


@settings(max_examples=200, deadline=None)
@given(
    expression=st.sampled_from(EXPRESSIONS),
    now=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31)),
)
def test_previous_occurrence_agrees_with_croniter(expression, now):
    now = now.replace(microsecond=0)
    ours = parse_schedule(expression).previous(now)
    # croniter's get_prev is strictly before its start: start one second later to include `now`.
    start = now.timestamp() + 1
    theirs = croniter(expression, datetime.fromtimestamp(start), second_at_beginning=True).get_prev(datetime)

    assert ours == theirs


def test_a_firing_at_the_scheduled_second_belongs_to_that_occurrence():
    assert parse_schedule("0 0 9 * * *").previous(datetime(2026, 11, 25, 9, 0, 0)) == datetime(2026, 11, 25, 9, 0, 0)


def test_a_late_firing_belongs_to_the_occurrence_it_is_late_for():
    assert parse_schedule("0 0 9 * * *").previous(datetime(2026, 11, 25, 9, 3, 12)) == datetime(2026, 11, 25, 9, 0, 0)


@pytest.mark.parametrize(
    "expression",
    ["", "0 9 * * *", "0 0 9 * * * *", "61 0 9 * * *", "0 0 25 * * *", "0 0 9 * FOO *", "0 0 9 * * 1-", "0 */0 * * * *", "01:00:00"],
)
def test_a_bad_schedule_is_a_config_error_naming_the_setting(expression):
    with pytest.raises(ConfigError) as raised:
        parse_schedule(expression)

    assert "SurveySchedule" in str(raised.value)
