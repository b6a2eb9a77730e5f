"""Scheduled surveys: each timer occurrence becomes one survey broadcast on the jobs queue."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared_code.notifications import jobs
from shared_code.plumbing.errors import ConfigError
from shared_code.plumbing.ncrontab import parse_schedule

if TYPE_CHECKING:
    from shared_code.notifications.ports import NotificationServices

log = logging.getLogger(__name__)


def survey_audience(value: str) -> Any:
    """The `to` of the survey job from the SurveyAudience setting."""
    if value == "all":
        return "all"
    kind, _, target = value.partition(":")
    if kind == "channel" and target:
        return {"channel": target}
    raise ConfigError(f'setting SurveyAudience must be "all" or "channel:<channel id>", not {value!r}')


def occurrence_id(occurrence: datetime) -> str:
    """The notification id of one occurrence: every firing for it (another instance, a restart,
    runOnStartup) names the same notification, which the fan-out starts only once."""
    return f"survey-{occurrence.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def on_timer(past_due: bool, services: NotificationServices, *, now: datetime | None = None) -> dict[str, Any]:
    """Enqueue the survey broadcast for the occurrence this firing belongs to; returns the job.

    Nothing is sent here: the timer returns in milliseconds whatever the number of users,
    and the queue fan-out does the sending (and skips conversations already in a survey).
    """
    settings = services.settings
    now = (now or datetime.now(UTC)).astimezone(UTC)
    schedule = parse_schedule(settings.survey_schedule, "SurveySchedule")
    occurrence = schedule.previous(now.replace(tzinfo=None)).replace(tzinfo=UTC)
    if past_due:
        log.warning("survey timer is past due: %.1f s late for the %s occurrence",
                    (now - occurrence).total_seconds(), occurrence.isoformat())
    job = {"v": jobs.VERSION, "kind": "dialog", "dialog": "survey", "id": occurrence_id(occurrence),
           "to": survey_audience(settings.survey_audience)}
    jobs.parse_job(job)  # the job this function writes must be one the queue function reads
    jobs.enqueue(job, services)
    log.info("survey broadcast %s enqueued for %s", job["id"], job["to"])
    return job
