"""Reads of the job engine."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from jobs.conf import conf
from jobs.cron import cron_in_words, next_slots, slots_between
from jobs.models import FINISHED_STATUSES, JobRun, JobState, RunStatus
from jobs.registry import all_jobs, get_job


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


def job_missed_slots(
    *, job: str, now: datetime | None = None, window: timedelta | None = None
) -> list[datetime]:
    """Slots the job's cron expected in the window that have no recorded run: the times the
    scheduler was down (or a tick was lost)."""
    now = now or timezone.now()
    window = window or timedelta(hours=conf.MISSED_SLOT_WINDOW_HOURS)
    start = now - window
    expected = list(slots_between(get_job(job).cron, start, now))
    recorded = set(
        JobRun.objects.filter(job=job, slot__gt=start, slot__lte=now).values_list("slot", flat=True)
    )
    return [slot for slot in expected if slot not in recorded]


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


@dataclasses.dataclass(frozen=True)
class JobOverview:
    name: str
    description: str
    cron: str
    schedule: str
    queue: str
    next_runs: list[datetime]
    state: JobState
    last_run: JobRun | None
    last_finished_run: JobRun | None
    stats: JobStats


def _percentile(ordered: list[int], fraction: float) -> int | None:
    """Linear interpolation between the closest ranks, as PostgreSQL's percentile_cont."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def success_rate(*, succeeded: int, worked: int) -> float | None:
    """A percentage with two decimals, as the seeds' status endpoint shows it."""
    return round(100 * succeeded / worked, 2) if worked else None


def job_stats(*, job: str) -> JobStats:
    sample = list(
        JobRun.objects.filter(
            job=job, status__in=FINISHED_STATUSES, parent__isnull=True, dry_run=False
        )
        .order_by("-id")
        .values_list("status", "duration_ms")[:STATS_SAMPLE_SIZE]
    )
    counts = {status: 0 for status in RunStatus}
    for status, _ in sample:
        counts[status] += 1
    durations = sorted(
        duration for status, duration in sample if status in WORK_STATUSES and duration is not None
    )
    worked = sum(counts[status] for status in WORK_STATUSES)
    return JobStats(
        sample_size=len(sample),
        succeeded=counts[RunStatus.SUCCEEDED],
        partial=counts[RunStatus.PARTIAL],
        failed=counts[RunStatus.FAILED],
        skipped=counts[RunStatus.SKIPPED],
        success_rate=success_rate(succeeded=counts[RunStatus.SUCCEEDED], worked=worked),
        p50_ms=_percentile(durations, 0.50),
        p95_ms=_percentile(durations, 0.95),
    )


def job_overview(
    *, job: str, now: datetime | None = None, state: JobState | None = None
) -> JobOverview:
    """Everything an operator sees about one job; raises UnknownJob."""
    spec = get_job(job)
    now = now or timezone.now()
    top_level = JobRun.objects.filter(job=job, parent__isnull=True).order_by("-id")
    return JobOverview(
        name=spec.name,
        description=spec.description,
        cron=spec.cron,
        schedule=cron_in_words(spec.cron),
        queue=spec.queue,
        next_runs=next_slots(spec.cron, now, 3),
        state=state or job_state(job=job),
        last_run=top_level.first(),
        last_finished_run=top_level.filter(status__in=FINISHED_STATUSES, dry_run=False).first(),
        stats=job_stats(job=job),
    )


@dataclasses.dataclass(frozen=True)
class JobDetail(JobOverview):
    recent_runs: list[JobRun]
    missed_slots: list[datetime]


def job_detail(*, job: str, now: datetime | None = None) -> JobDetail:
    now = now or timezone.now()
    overview = job_overview(job=job, now=now)
    return JobDetail(
        **{field.name: getattr(overview, field.name) for field in dataclasses.fields(overview)},
        recent_runs=job_recent_runs(job=job),
        missed_slots=job_missed_slots(job=job, now=now),
    )


def job_overviews(*, now: datetime | None = None) -> list[JobOverview]:
    now = now or timezone.now()
    states = JobState.objects.in_bulk()
    return [
        job_overview(job=spec.name, now=now, state=states.get(spec.name, JobState(job=spec.name)))
        for spec in all_jobs()
    ]


def job_recent_runs(*, job: str, limit: int = 20) -> list[JobRun]:
    return list(JobRun.objects.filter(job=job, parent__isnull=True).order_by("-id")[:limit])


def job_run_list(
    *,
    job: str | None = None,
    status: str | None = None,
    trigger: str | None = None,
    since: datetime | None = None,
    limit: int = 20,
) -> list[JobRun]:
    """Run history, newest first; `since` compares with the time the run was recorded."""
    runs = JobRun.objects.order_by("-id")
    if job:
        runs = runs.filter(job=job)
    if status:
        runs = runs.filter(status=status)
    if trigger:
        runs = runs.filter(trigger=trigger)
    if since:
        runs = runs.filter(created_at__gte=since)
    return list(runs[:limit])


def job_run_get(*, run_id: int) -> JobRun:
    """One run with its attempts; raises JobRun.DoesNotExist."""
    return JobRun.objects.prefetch_related("attempts").get(pk=run_id)


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
    failures = JobRun.objects.filter(status__in=(RunStatus.FAILED, RunStatus.PARTIAL))
    return failures.order_by("-id")[:limit]
