"""Reads of the job engine."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from jobs.cron import slots_between
from jobs.models import FINISHED_STATUSES, JobRun, JobState
from jobs.registry import get_job


def job_state(*, job: str) -> JobState:
    """The job's state; a job never paused has no row yet and is enabled."""
    return JobState.objects.filter(job=job).first() or JobState(job=job)


def job_last_finished_run(*, job: str) -> JobRun | None:
    return JobRun.objects.filter(job=job, status__in=FINISHED_STATUSES).order_by("-id").first()


def job_missed_slots(
    *, job: str, now: datetime | None = None, window: timedelta | None = None
) -> list[datetime]:
    """Slots the job's cron expected in the window that have no recorded run: the times the
    scheduler was down (or a tick was lost)."""
    now = now or timezone.now()
    window = window or timedelta(hours=settings.STEWARD_MISSED_SLOT_WINDOW_HOURS)
    start = now - window
    expected = list(slots_between(get_job(job).cron, start, now))
    recorded = set(
        JobRun.objects.filter(job=job, slot__gt=start, slot__lte=now).values_list("slot", flat=True)
    )
    return [slot for slot in expected if slot not in recorded]
