"""Schedule ticks and runtime control: every write about when and whether jobs run."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections import defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfoNotFoundError

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs.audit import control_action_record
from jobs.conf import conf
from jobs.cron import latest_slot, next_slot, slot_of
from jobs.exceptions import CronError, UnknownJob
from jobs.models import ControlAction, JobRun, JobState, RunStatus, Schedule, Trigger
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
        control_action_record(
            action=ControlAction.Action.JOB_PAUSED if paused else ControlAction.Action.JOB_RESUMED,
            target_type=ControlAction.Target.JOB,
            target=job,
            actor=by,
            reason=reason,
            before={"paused": not paused},
            after={"paused": paused},
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

    Only the schedules whose next slot has come are read (an index on `next_slot`). A
    schedule due this very minute runs it; one whose next slot has passed missed slots while
    no scheduler ran (at most MISSED_SLOT_WINDOW_HOURS back are counted): they are reported,
    and a catch-up schedule runs the latest of them, once. A paused schedule's or paused
    job's slot is recorded skipped. Each schedule's next slot then moves past this minute.
    The unique (schedule, slot) constraint makes a second scheduler, a restart within the
    minute or a repeated tick harmless.
    """
    minute = slot_of(now or timezone.now())
    report = TickReport(minute=minute)
    window_start = minute - timedelta(hours=conf.MISSED_SLOT_WINDOW_HOURS)
    paused_jobs = {state.job: state for state in JobState.objects.filter(paused=True)}
    due = Schedule.objects.filter(Q(next_slot__isnull=True) | Q(next_slot__lte=minute))
    runs: list[JobRun] = []
    moved: dict[datetime, list[int]] = defaultdict(list)
    # Schedules sharing a cron and a time zone share their answers within one tick.
    slots = functools.cache(latest_slot)
    following = functools.cache(lambda cron, zone: next_slot(cron, minute, zone))
    for schedule in due.only(*TICK_FIELDS).iterator(chunk_size=2_000):
        spec = _spec_or_none(schedule)
        if spec is None:
            continue
        try:
            latest, count = _due_slot(schedule, minute, window_start, slots)
            moved[following(schedule.cron, schedule.timezone)].append(schedule.pk)
        except (CronError, ValueError, ZoneInfoNotFoundError) as exc:
            # Written past the services' checks (straight into the database): the others run.
            logger.error("Schedule %s cannot be evaluated: %s", schedule.name, exc)
            continue
        report.evaluated += 1
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
    report.recorded = scheduled_runs_record(runs)
    report.skipped = sum(run.status == RunStatus.SKIPPED for run in report.recorded)
    for following_slot, pks in moved.items():
        # Not past a slot an operator's edit set meanwhile, nor back behind another scheduler.
        Schedule.objects.filter(pk__any=pks).filter(
            Q(next_slot__isnull=True) | Q(next_slot__lte=minute)
        ).update(next_slot=following_slot)
    _log_tick(report)
    return report


def _due_slot(schedule: Schedule, minute: datetime, window_start: datetime, slots) -> tuple:
    """The latest slot of the schedule up to `minute` and how many there were since its next
    slot (or its creation): (None, 0) when none is due."""
    if schedule.next_slot == minute:
        return minute, 1
    if schedule.next_slot is None:
        start = slot_of(schedule.created_at)
    else:
        # Slots are whole minutes: (next slot - 1 s, minute] starts at the next slot.
        start = schedule.next_slot - timedelta(seconds=1)
    count, latest = slots(schedule.cron, max(start, window_start), minute, schedule.timezone)
    return latest, count


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
    "next_slot",
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
