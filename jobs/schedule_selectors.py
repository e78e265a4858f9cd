"""Reads of the schedules: their next runs in their own time zone and in UTC, the slots they
missed, their audit."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import OuterRef, Subquery
from django.utils import timezone

from jobs.conf import conf
from jobs.cron import cron_in_words, next_slots, slot_of, slots_between
from jobs.models import JobRun, JobState, Schedule, ScheduleChange

# At most this many missed slots are listed per schedule (an every-minute schedule misses
# 1,440 in a day); the count is always whole.
MISSED_SLOTS_LISTED = 20


@dataclasses.dataclass(frozen=True)
class MissedSlots:
    count: int
    latest: list[datetime]  # newest last, at most MISSED_SLOTS_LISTED


def schedule_missed_slots(
    *, schedule: Schedule, now: datetime | None = None, window: timedelta | None = None
) -> MissedSlots:
    """Slots the schedule expected in the window (never before it was created) that have no
    recorded run: the times no scheduler ran, or a tick was lost."""
    now = now or timezone.now()
    window = window or timedelta(hours=conf.MISSED_SLOT_WINDOW_HOURS)
    start = max(now - window, slot_of(schedule.created_at))
    expected = list(slots_between(schedule.cron, start, now, schedule.timezone))
    recorded = set(
        JobRun.objects.filter(schedule=schedule, slot__gt=start, slot__lte=now).values_list(
            "slot", flat=True
        )
    )
    missed = [slot for slot in expected if slot not in recorded]
    return MissedSlots(count=len(missed), latest=missed[-MISSED_SLOTS_LISTED:])


@dataclasses.dataclass(frozen=True)
class NextRun:
    utc: datetime
    local: datetime  # the same instant in the schedule's time zone


@dataclasses.dataclass(frozen=True)
class ScheduleOverview:
    schedule: Schedule
    in_words: str
    next_runs: list[NextRun]
    # Why its slots are recorded skipped: the schedule or its job paused; "" when it runs.
    paused_reason: str
    last_run: JobRun | None


NEXT_RUNS_SHOWN = 3


def schedule_overviews(
    *,
    job: str | None = None,
    ids: list[int] | None = None,
    now: datetime | None = None,
    states: dict | None = None,
) -> list[ScheduleOverview]:
    """Every schedule (or a job's, or those of `ids`), with its next runs in its own time zone
    and in UTC and its latest run, in two queries."""
    now = now or timezone.now()
    schedules = Schedule.objects.annotate(
        last_run_id=Subquery(
            JobRun.objects.filter(schedule=OuterRef("pk")).order_by("-id").values("id")[:1]
        )
    ).order_by("job", "name")
    if job is not None:
        schedules = schedules.filter(job=job)
    if ids is not None:
        schedules = schedules.filter(pk__in=ids)
    schedules = list(schedules)
    if states is None:
        states = JobState.objects.in_bulk({schedule.job for schedule in schedules})
    last_runs = JobRun.objects.select_related("schedule").in_bulk(
        [schedule.last_run_id for schedule in schedules if schedule.last_run_id]
    )
    return [
        ScheduleOverview(
            schedule=schedule,
            in_words=cron_in_words(schedule.cron),
            next_runs=[
                NextRun(utc=slot, local=slot.astimezone(ZoneInfo(schedule.timezone)))
                for slot in next_slots(schedule.cron, now, NEXT_RUNS_SHOWN, schedule.timezone)
            ],
            paused_reason=_schedule_paused_reason(schedule, states.get(schedule.job)),
            last_run=last_runs.get(schedule.last_run_id),
        )
        for schedule in schedules
    ]


def _schedule_paused_reason(schedule: Schedule, state: JobState | None) -> str:
    if state is not None and state.paused:
        return f"job {schedule.job} paused"
    if not schedule.enabled:
        return "schedule paused"
    return ""


def schedule_changes(*, schedule: Schedule, limit: int = 50) -> list[ScheduleChange]:
    """The schedule's audit, newest first."""
    return list(ScheduleChange.objects.filter(schedule=schedule).order_by("-id")[:limit])
