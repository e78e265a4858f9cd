"""Reads of the job engine."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from datetime import datetime

from django.db import connection
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from jobs.models import (
    FINISHED_STATUSES,
    JobRun,
    JobRunAttempt,
    JobState,
    RunStatus,
)
from jobs.registry import JobSpec, all_jobs, get_job
from jobs.run_selectors import percentile, percentiles_of, runs_of_entities
from jobs.run_selectors import run_progress as run_progress
from jobs.schedule_selectors import (
    NEXT_RUNS_SHOWN,
    MissedSlots,
    ScheduleOverview,
    schedule_missed_slots,
    schedule_overviews,
)


def job_state(*, job: str) -> JobState:
    """The job's state; a job never paused has no row yet and is enabled."""
    return JobState.objects.filter(job=job).first() or JobState(job=job)


def job_last_finished_run(*, job: str) -> JobRun | None:
    return JobRun.objects.filter(job=job, status__in=FINISHED_STATUSES).order_by("-id").first()


def job_run_finished_since(*, job: str, since: datetime, summary: dict | None = None) -> bool:
    """Whether a run of `job` finished at or after `since` with each of `summary`'s keys
    holding its value in the run's summary."""
    matching = {f"summary__{key}": value for key, value in (summary or {}).items()}
    return JobRun.objects.filter(job=job, finished_at__gte=since, **matching).exists()


def _merged_next_runs(overviews: list[ScheduleOverview]) -> list[datetime]:
    """A job's next runs over its running schedules, soonest first."""
    slots = {
        run.utc
        for overview in overviews
        if not overview.paused_reason
        for run in overview.next_runs
    }
    return sorted(slots)[:NEXT_RUNS_SHOWN]


# Job statistics look at this many latest finished runs of a job, so they stay cheap.
STATS_SAMPLE_SIZE = 200
WORK_STATUSES = (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED)


@dataclasses.dataclass(frozen=True)
class JobStats:
    """Outcomes and durations of a job's latest finished runs (shards and dry runs excluded).

    Skipped runs did no work (the job was paused or already running), so they are counted
    but left out of the success rate, which is succeeded / (succeeded + partial + failed).
    """

    sample_size: int
    succeeded: int
    partial: int
    failed: int
    skipped: int
    success_rate: float | None
    p50_ms: int | None
    p95_ms: int | None
    # How long the runs waited for a worker to start them (their first attempts' waits).
    wait_p50_ms: int | None
    wait_p95_ms: int | None


@dataclasses.dataclass(frozen=True)
class RunPoint:
    """One finished run as a chart draws it."""

    pk: int
    status: str
    duration_ms: int | None
    # How long its first attempt waited for a worker.
    wait_ms: int | None = None


# The overview keeps this many of the latest finished runs for the dashboard's chart.
RECENT_POINTS = 30


@dataclasses.dataclass(frozen=True)
class JobOverview:
    name: str
    description: str
    queue: str
    # Its schedules' next runs merged, soonest first.
    next_runs: list[datetime]
    schedules: list[ScheduleOverview]
    state: JobState
    last_run: JobRun | None
    last_finished_run: JobRun | None
    stats: JobStats
    # The latest finished runs counted in `stats`, newest first (at most RECENT_POINTS).
    recent_finished: tuple[RunPoint, ...]


def success_rate(*, succeeded: int, worked: int) -> float | None:
    """A percentage with two decimals, as the seeds' status endpoint shows it."""
    return round(100 * succeeded / worked, 2) if worked else None


# What the overviews read of each run: its first attempt's wait is annotated.
OVERVIEW_COLUMNS = ("id", "status", "duration_ms", "wait_ms")


def _with_first_wait(runs: QuerySet[JobRun]) -> QuerySet[JobRun]:
    first = JobRunAttempt.objects.filter(run=OuterRef("pk")).order_by("number")
    return runs.annotate(wait_ms=Subquery(first.values("wait_ms")[:1]))


def _stats_sample(job: str) -> QuerySet[JobRun]:
    """The runs statistics look at: the latest finished top-level runs that did not dry-run."""
    return _with_first_wait(
        JobRun.objects.filter(
            job=job, status__in=FINISHED_STATUSES, parent__isnull=True, dry_run=False
        )
    ).order_by("-id")[:STATS_SAMPLE_SIZE]


def _stats_of(sample: list[tuple[str, int | None, int | None]]) -> JobStats:
    """The statistics of (status, duration_ms, wait_ms) rows."""
    counts = {status: 0 for status in RunStatus}
    for status, _, _ in sample:
        counts[status] += 1
    durations = sorted(
        duration
        for status, duration, _ in sample
        if status in WORK_STATUSES and duration is not None
    )
    worked = sum(counts[status] for status in WORK_STATUSES)
    wait = percentiles_of([wait for _, _, wait in sample if wait is not None])
    return JobStats(
        sample_size=len(sample),
        succeeded=counts[RunStatus.SUCCEEDED],
        partial=counts[RunStatus.PARTIAL],
        failed=counts[RunStatus.FAILED],
        skipped=counts[RunStatus.SKIPPED],
        success_rate=success_rate(succeeded=counts[RunStatus.SUCCEEDED], worked=worked),
        p50_ms=percentile(durations, 0.50),
        p95_ms=percentile(durations, 0.95),
        wait_p50_ms=wait.p50_ms,
        wait_p95_ms=wait.p95_ms,
    )


def job_stats(*, job: str) -> JobStats:
    return _stats_of(list(_stats_sample(job).values_list(*OVERVIEW_COLUMNS[1:])))


OVERVIEW_KINDS = ("last", "sample")


def _overview_parts(job: str) -> dict[str, QuerySet[JobRun]]:
    """What an overview reads of a job's runs: its latest top-level run, its stats sample."""
    top_level = _with_first_wait(JobRun.objects.filter(job=job, parent__isnull=True))
    top_level = top_level.order_by("-id")
    return {"last": top_level[:1], "sample": _stats_sample(job)}


@functools.lru_cache(maxsize=16)
def _overview_statement(jobs: tuple[str, ...], vendor: str) -> tuple[str, tuple]:
    """One statement reading every job's `_overview_parts`: the parts' own statements joined
    by UNION ALL, each in a subquery so it keeps its ORDER BY, LIMIT and index (PostgreSQL and
    SQLite both allow that), each row tagged with its part's number (job index * 2 + kind).
    Compiled once per set of jobs: compiling two dozen querysets costs more than running
    them."""
    statements, params = [], []
    for index, (job, kind) in enumerate(itertools.product(jobs, OVERVIEW_KINDS)):
        queryset = _overview_parts(job)[kind].values_list(*OVERVIEW_COLUMNS)
        sql, part_params = queryset.query.sql_with_params()
        statements.append(f"SELECT {index} AS part, part_{index}.* FROM ({sql}) AS part_{index}")
        params.extend(part_params)
    return " UNION ALL ".join(statements), tuple(params)


# PostgreSQL reads every job's parts with one LATERAL subquery per kind, planned once, rather
# than two per job as in the UNION ALL statement other databases get (whose planning grows with
# the number of jobs).
OVERVIEW_LATERAL_SQL = """
SELECT jobs.job, 0, part.id, part.status, part.duration_ms, part.wait_ms
FROM unnest(%(jobs)s::text[]) AS jobs (job)
CROSS JOIN LATERAL (
    SELECT run.id, run.status, run.duration_ms, ({first_wait}) AS wait_ms FROM {table} AS run
    WHERE job = jobs.job AND parent_id IS NULL ORDER BY id DESC LIMIT 1
) AS part
UNION ALL
SELECT jobs.job, 1, part.id, part.status, part.duration_ms, part.wait_ms
FROM unnest(%(jobs)s::text[]) AS jobs (job)
CROSS JOIN LATERAL (
    SELECT run.id, run.status, run.duration_ms, ({first_wait}) AS wait_ms FROM {table} AS run
    WHERE job = jobs.job AND parent_id IS NULL AND NOT dry_run AND status = ANY(%(finished)s)
    ORDER BY id DESC LIMIT %(sample)s
) AS part
"""
OVERVIEW_FIRST_WAIT_SQL = (
    "SELECT wait_ms FROM {attempts} WHERE run_id = run.id ORDER BY number LIMIT 1"
)


def _overview_rows(
    jobs: tuple[str, ...], *, lateral: bool | None = None
) -> dict[tuple[str, str], list[tuple]]:
    """Every job's (id, status, duration_ms, wait_ms) rows of each part, newest first, in one query
    (`lateral`: PostgreSQL's statement; by default on PostgreSQL)."""
    keys = list(itertools.product(jobs, OVERVIEW_KINDS))
    found: dict[tuple[str, str], list[tuple]] = {key: [] for key in keys}
    if not jobs:
        return found
    if lateral is None:
        lateral = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if lateral:
            quote = connection.ops.quote_name
            first_wait = OVERVIEW_FIRST_WAIT_SQL.format(
                attempts=quote(JobRunAttempt._meta.db_table)
            )
            cursor.execute(
                OVERVIEW_LATERAL_SQL.format(
                    table=quote(JobRun._meta.db_table), first_wait=first_wait
                ),
                {
                    "jobs": list(jobs),
                    "finished": sorted(FINISHED_STATUSES),
                    "sample": STATS_SAMPLE_SIZE,
                },
            )
            for row in cursor.fetchall():
                found[row[0], OVERVIEW_KINDS[row[1]]].append(row[2:])
        else:
            sql, params = _overview_statement(jobs, connection.vendor)
            cursor.execute(sql, params)
            for row in cursor.fetchall():
                found[keys[row[0]]].append(row[1:])
    for rows in found.values():
        rows.sort(reverse=True)  # by id: a UNION does not promise its parts' order
    return found


def _overviews(
    specs: list[JobSpec], *, now: datetime, states: dict[str, JobState]
) -> list[JobOverview]:
    """The overviews of `specs` (their states given) in two queries however many they are:
    every job's latest run and statistics sample in one, the runs shown in full in the other.
    """
    rows = _overview_rows(tuple(spec.name for spec in specs))
    shown = {listed[0][0] for listed in rows.values() if listed}
    runs = JobRun.objects.select_related("schedule", "follow_up_of").in_bulk(shown) if shown else {}
    by_job: dict[str, list[ScheduleOverview]] = {spec.name: [] for spec in specs}
    for overview in schedule_overviews(
        job=specs[0].name if len(specs) == 1 else None, now=now, states=states
    ):
        if overview.schedule.job in by_job:
            by_job[overview.schedule.job].append(overview)
    overviews = []
    for spec in specs:
        last = rows[spec.name, "last"]
        sample = rows[spec.name, "sample"]
        overviews.append(
            JobOverview(
                name=spec.name,
                description=spec.description,
                queue=spec.queue,
                next_runs=_merged_next_runs(by_job[spec.name]),
                schedules=by_job[spec.name],
                state=states.get(spec.name) or JobState(job=spec.name),
                last_run=runs.get(last[0][0]) if last else None,
                last_finished_run=runs.get(sample[0][0]) if sample else None,
                stats=_stats_of([row[1:] for row in sample]),
                recent_finished=tuple(RunPoint(*row) for row in sample[:RECENT_POINTS]),
            )
        )
    return overviews


def job_overview(
    *, job: str, now: datetime | None = None, state: JobState | None = None
) -> JobOverview:
    """Everything an operator sees about one job; raises UnknownJob."""
    spec = get_job(job)
    state = state or job_state(job=job)
    return _overviews([spec], now=now or timezone.now(), states={job: state})[0]


@dataclasses.dataclass(frozen=True)
class JobDetail(JobOverview):
    recent_runs: list[JobRun]
    # Per schedule name: the slots it missed in the window.
    missed_slots: dict[str, MissedSlots]


def job_detail(*, job: str, now: datetime | None = None) -> JobDetail:
    now = now or timezone.now()
    overview = job_overview(job=job, now=now)
    return JobDetail(
        **{field.name: getattr(overview, field.name) for field in dataclasses.fields(overview)},
        recent_runs=job_recent_runs(job=job),
        missed_slots={
            scheduled.schedule.name: schedule_missed_slots(schedule=scheduled.schedule, now=now)
            for scheduled in overview.schedules
        },
    )


def job_overviews(*, now: datetime | None = None) -> list[JobOverview]:
    """Every registered job's overview, in catalog order, in three queries."""
    states = JobState.objects.in_bulk()
    return _overviews(all_jobs(), now=now or timezone.now(), states=states)


def job_recent_runs(*, job: str, limit: int = 20) -> list[JobRun]:
    runs = JobRun.objects.filter(job=job, parent__isnull=True).select_related(
        "schedule", "follow_up_of"
    )
    return list(runs.order_by("-id")[:limit])


def job_run_list(
    *,
    job: str | None = None,
    status: str | None = None,
    trigger: str | None = None,
    since: datetime | None = None,
    schedule: int | None = None,
    follow_up_of: int | None = None,
    entities: dict[str, int] | None = None,
    limit: int = 20,
) -> list[JobRun]:
    """Run history, newest first; `since` compares with the time the run was recorded;
    `follow_up_of` keeps the follow-ups one run requested; `entities` ({"escrow": 7}) keeps
    the runs that changed each of those rows."""
    runs = JobRun.objects.select_related("schedule", "follow_up_of").order_by("-id")
    if entities:
        runs = runs_of_entities(runs, entities)
    if job:
        runs = runs.filter(job=job)
    if schedule:
        runs = runs.filter(schedule_id=schedule)
    if follow_up_of:
        runs = runs.filter(follow_up_of_id=follow_up_of)
    if status:
        runs = runs.filter(status=status)
    if trigger:
        runs = runs.filter(trigger=trigger)
    if since:
        runs = runs.filter(created_at__gte=since)
    return list(runs[:limit])


def job_run_get(*, run_id: int) -> JobRun:
    """One run with its attempts, the run that requested it and its follow-ups; raises
    JobRun.DoesNotExist."""
    return (
        JobRun.objects.select_related("schedule", "follow_up_of")
        .prefetch_related("attempts", "follow_ups")
        .get(pk=run_id)
    )


def run_follow_ups(*, run: JobRun) -> list[JobRun]:
    """The follow-up runs `run` requested, oldest first."""
    return list(run.follow_ups.order_by("pk").only("job", "status", "follow_up_of_id"))


@dataclasses.dataclass(frozen=True)
class RunTotals:
    total: int
    succeeded: int
    partial: int
    failed: int
    skipped: int
    success_rate: float | None


def job_run_totals() -> RunTotals:
    """Outcomes of every finished run (shards and dry runs excluded); `total` counts the runs
    that did work."""
    counts = JobRun.objects.filter(parent__isnull=True, dry_run=False).aggregate(
        **{status: Count("pk", filter=Q(status=status)) for status in FINISHED_STATUSES}
    )
    worked = sum(counts[status] for status in WORK_STATUSES)
    return RunTotals(
        total=worked,
        succeeded=counts[RunStatus.SUCCEEDED],
        partial=counts[RunStatus.PARTIAL],
        failed=counts[RunStatus.FAILED],
        skipped=counts[RunStatus.SKIPPED],
        success_rate=success_rate(succeeded=counts[RunStatus.SUCCEEDED], worked=worked),
    )


def job_recent_finished_runs(
    *, limit: int = 10, job: str | None = None, dry_run: bool | None = None
) -> QuerySet[JobRun]:
    runs = JobRun.objects.filter(status__in=FINISHED_STATUSES, parent__isnull=True)
    if job:
        runs = runs.filter(job=job)
    if dry_run is not None:
        runs = runs.filter(dry_run=dry_run)
    return runs.order_by("-id")[:limit]


def job_recent_failures(*, limit: int = 10) -> QuerySet[JobRun]:
    """Failed and partial runs, newest first; dry runs changed nothing, so they are left out."""
    failures = JobRun.objects.filter(
        status__in=(RunStatus.FAILED, RunStatus.PARTIAL), dry_run=False
    )
    return failures.order_by("-id")[:limit]
