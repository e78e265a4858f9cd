"""Schedule ticks and runtime control: every write about when and whether jobs run."""

from __future__ import annotations

import dataclasses
import functools
import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs.conf import conf
from jobs.cron import latest_slot, slot_of
from jobs.exceptions import UnknownJob
from jobs.models import JobRun, JobState, RunStatus, Schedule, Trigger
from jobs.registry import JobSpec, get_job
from jobs.services import new_run, scheduled_runs_record

logger = logging.getLogger("steward.schedule")

SCHEDULER = "scheduler"


def _locked_state(job: str) -> JobState:
    """The job's state row, created on first use and locked for this transaction."""
    get_job(job)
    JobState.objects.bulk_create([JobState(job=job)], ignore_conflicts=True)
    return JobState.objects.select_for_update().get(job=job)


@transaction.atomic
def job_pause(*, job: str, by: str, reason: str = "") -> JobState:
    """Pause a job: its ticks are recorded as skipped until it is resumed."""
    return _set_paused(job=job, paused=True, by=by, reason=reason)


@transaction.atomic
def job_resume(*, job: str, by: str, reason: str = "") -> JobState:
    return _set_paused(job=job, paused=False, by=by, reason=reason)


def _set_paused(*, job: str, paused: bool, by: str, reason: str) -> JobState:
    state = _locked_state(job)
    if state.paused != paused:
        state.paused = paused
        state.changed_by = by
        state.change_reason = reason
        state.changed_at = timezone.now()
        state.save(update_fields=["paused", "changed_by", "change_reason", "changed_at"])
        logger.warning(
            "Job %s %s by %s%s",
            job,
            "paused" if paused else "resumed",
            by,
            f": {reason}" if reason else "",
        )
    return state


@dataclasses.dataclass
class TickReport:
    """What one minute's tick did."""

    minute: datetime
    evaluated: int = 0
    recorded: list[JobRun] = dataclasses.field(default_factory=list)
    skipped: int = 0
    caught_up: int = 0
    missed: dict[str, int] = dataclasses.field(default_factory=dict)


def schedules_tick(*, now: datetime | None = None) -> TickReport:
    """Record and send the run of every schedule due this minute, each in its own time zone.

    Every schedule not yet evaluated up to this minute is: its slots since it was last
    evaluated (at most MISSED_SLOT_WINDOW_HOURS back, never before it was created) are found
    with the cron library. The slot of this minute runs; slots missed while no scheduler ran
    are reported, and a catch-up schedule runs the latest of them, once. A paused schedule's
    or paused job's slot is recorded skipped. The unique (schedule, slot) constraint makes a
    second scheduler, a restart within the minute or a repeated tick harmless.
    """
    minute = slot_of(now or timezone.now())
    report = TickReport(minute=minute)
    window_start = minute - timedelta(hours=conf.MISSED_SLOT_WINDOW_HOURS)
    paused_jobs = {state.job: state for state in JobState.objects.filter(paused=True)}
    due = Schedule.objects.filter(
        Q(evaluated_until__isnull=True) | Q(evaluated_until__lt=minute)
    ).only(*TICK_FIELDS)
    runs: list[JobRun] = []
    evaluated: list[int] = []
    slots = functools.lru_cache(maxsize=None)(latest_slot)
    for schedule in due.iterator(chunk_size=2_000):
        spec = _spec_or_none(schedule)
        if spec is None:
            continue
        evaluated.append(schedule.pk)
        start = max(schedule.evaluated_until or slot_of(schedule.created_at), window_start)
        count, latest = slots(schedule.cron, start, minute, schedule.timezone)
        if latest is None:
            continue
        missed = count - (latest == minute)
        if missed:
            report.missed[schedule.name] = missed
        skipped_reason = _paused_reason(schedule, paused_jobs.get(schedule.job))
        if latest != minute and (skipped_reason or not schedule.catch_up):
            continue
        reason = ""
        if latest != minute:
            reason = f"catch-up: the latest of {count} slots missed while no scheduler ran"
            report.caught_up += 1
        runs.append(_slot_run(spec, schedule, latest, reason=reason, skipped=skipped_reason))
    report.evaluated = len(evaluated)
    report.recorded = scheduled_runs_record(runs)
    report.skipped = sum(run.status == RunStatus.SKIPPED for run in report.recorded)
    for first in range(0, len(evaluated), UPDATE_CHUNK):
        Schedule.objects.filter(pk__in=evaluated[first : first + UPDATE_CHUNK]).filter(
            Q(evaluated_until__isnull=True) | Q(evaluated_until__lt=minute)
        ).update(evaluated_until=minute)
    _log_tick(report)
    return report


UPDATE_CHUNK = 5_000
# What the tick reads of each schedule.
TICK_FIELDS = (
    "name",
    "job",
    "cron",
    "timezone",
    "params",
    "enabled",
    "catch_up",
    "updated_by",
    "created_at",
    "evaluated_until",
)


def _spec_or_none(schedule: Schedule) -> JobSpec | None:
    try:
        return get_job(schedule.job)
    except UnknownJob:
        logger.warning(
            "Schedule %s names job %s, which this code does not have; not run.",
            schedule.name,
            schedule.job,
        )
        return None


def _paused_reason(schedule: Schedule, job_state: JobState | None) -> str:
    if job_state is not None:
        return f"job paused by {job_state.changed_by or 'an operator'}" + (
            f": {job_state.change_reason}" if job_state.change_reason else ""
        )
    if not schedule.enabled:
        return f"schedule {schedule.name} paused by {schedule.updated_by or 'an operator'}"
    return ""


def _slot_run(spec: JobSpec, schedule: Schedule, slot: datetime, *, reason: str, skipped: str):
    run = new_run(
        spec,
        trigger=Trigger.SCHEDULE,
        requested_by=SCHEDULER,
        reason=reason or f"schedule {schedule.name}",
        as_of=slot,
        params=schedule.params,
        slot=slot,
        schedule=schedule,
    )
    if skipped:
        run.status, run.status_reason, run.finished_at = RunStatus.SKIPPED, skipped, timezone.now()
    return run


def _log_tick(report: TickReport) -> None:
    for name, count in sorted(report.missed.items()):
        logger.warning("Schedule %s missed %s slot(s) while no scheduler ran.", name, f"{count:,}")
    for run in report.recorded:
        if run.status == RunStatus.SKIPPED:
            logger.info(
                "Slot %s of %s recorded as skipped: %s",
                run.slot.isoformat(),
                run.job,
                run.status_reason,
            )
        else:
            logger.debug(
                "Slot %s of %s recorded as run #%s and sent.", run.slot.isoformat(), run.job, run.pk
            )
