"""Reads of runs as they happen: a run's progress (a fanned-out run's from its shards), each
attempt's own log, how long messages waited for a worker, the runs that changed a row, and
the workers with the runs they execute."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from jobs.entities import entity_run_ids
from jobs.exceptions import NotFoundError
from jobs.heartbeats import worker_is_gone
from jobs.models import FINISHED_STATUSES, JobRun, JobRunAttempt, RunStatus, WorkerHeartbeat
from jobs.registry import all_jobs

# Wait statistics look at this many latest attempts that recorded a wait, as job statistics
# look at the latest runs.
WAIT_SAMPLE_SIZE = 200


def percentile(ordered: list[int], fraction: float) -> int | None:
    """Linear interpolation between the closest ranks, as PostgreSQL's percentile_cont."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


# --- Progress ---------------------------------------------------------------------------------


def run_progress(run: JobRun) -> dict | None:
    """What the run last saved of its progress: {done, total, what, batches, per_second,
    seconds_left, at}; for a fanned-out run, which saves none of its own, its shards'
    combined, with shards_done and shards_total. None before it reported any."""
    if run.progress:
        return run.progress
    if run.parent_id is not None:
        return None
    shards = list(run.shards.values_list("status", "progress"))
    return _combined(shards) if shards else None


def _combined(shards: list[tuple[str, dict]]) -> dict:
    reports = [progress for _, progress in shards if progress]
    # A shard that ended without reporting had nothing to do; one not started yet has an
    # unknown total, and so has the whole.
    total_known = all(progress or status in FINISHED_STATUSES for status, progress in shards)
    totals = [progress.get("total") for progress in reports]
    done = sum(progress.get("done") or 0 for progress in reports)
    total = sum(totals) if total_known and None not in totals else None
    rates = [
        progress.get("per_second") or 0
        for status, progress in shards
        if progress and status == RunStatus.RUNNING
    ]
    per_second = round(sum(rates), 1) if rates else None
    shards_done = sum(status in FINISHED_STATUSES for status, _ in shards)
    seconds_left = None
    if shards_done == len(shards):
        seconds_left = 0.0
    elif total is not None and per_second:
        seconds_left = round(max(total - done, 0) / per_second, 1)
    return {
        "done": done,
        "total": total,
        "what": next((progress["what"] for progress in reports if progress.get("what")), ""),
        "batches": sum(progress.get("batches") or 0 for progress in reports),
        "per_second": per_second,
        "seconds_left": seconds_left,
        "at": max((progress["at"] for progress in reports if progress.get("at")), default=None),
        "shards_done": shards_done,
        "shards_total": len(shards),
    }


# --- Log --------------------------------------------------------------------------------------


class UnknownAttempt(NotFoundError, LookupError):
    def __init__(self, run: JobRun, number: int) -> None:
        super().__init__(
            f"run #{run.pk} has no attempt {number}; it has {run.attempt_count} "
            f"attempt{'s' if run.attempt_count != 1 else ''}"
        )


def run_attempt_logs(*, run: JobRun, attempt: int | None = None) -> list[JobRunAttempt]:
    """The run's attempts with their lines, oldest first, or just attempt number `attempt`
    (UnknownAttempt when it has none such)."""
    attempts = JobRunAttempt.objects.filter(run=run).only("run_id", "number", "log")
    if attempt is None:
        return list(attempts.order_by("number"))
    found = attempts.filter(number=attempt).first()
    if found is None:
        raise UnknownAttempt(run, attempt)
    return [found]


# --- Waits ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Percentiles:
    """The median and 95th percentile of a sample of milliseconds."""

    sample_size: int
    p50_ms: int | None
    p95_ms: int | None


def percentiles_of(values: list[int]) -> Percentiles:
    ordered = sorted(values)
    return Percentiles(
        sample_size=len(ordered),
        p50_ms=percentile(ordered, 0.50),
        p95_ms=percentile(ordered, 0.95),
    )


@dataclasses.dataclass(frozen=True)
class QueueWaitStats:
    """A queue's latest attempts (of every job it carries, both lanes): how long their
    messages waited for a worker, and how long the finished ones took."""

    queue: str
    jobs: tuple[str, ...]
    wait: Percentiles
    duration: Percentiles


def queue_wait_stats() -> list[QueueWaitStats]:
    """Wait and duration percentiles per job queue, by queue name, in one query a queue."""
    jobs_by_queue: dict[str, list[str]] = {}
    for spec in all_jobs():
        jobs_by_queue.setdefault(spec.queue, []).append(spec.name)
    stats = []
    for queue, jobs in sorted(jobs_by_queue.items()):
        rows = list(
            JobRunAttempt.objects.filter(run__job__in=jobs, wait_ms__isnull=False)
            .order_by("-id")
            .values_list("wait_ms", "started_at", "finished_at")[:WAIT_SAMPLE_SIZE]
        )
        durations = [
            int((finished - started).total_seconds() * 1000)
            for _, started, finished in rows
            if finished is not None
        ]
        stats.append(
            QueueWaitStats(
                queue=queue,
                jobs=tuple(sorted(jobs)),
                wait=percentiles_of([wait for wait, _, _ in rows]),
                duration=percentiles_of(durations),
            )
        )
    return stats


# --- By entity --------------------------------------------------------------------------------


def runs_of_entities(runs: QuerySet[JobRun], entities: dict[str, int]) -> QuerySet[JobRun]:
    """Only the runs that changed every one of `entities` ({"escrow": 7}): the intersection."""
    for entity, pk in entities.items():
        runs = runs.filter(pk__in=sorted(entity_run_ids(entity, pk)))
    return runs


# --- Workers ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WorkerRun:
    """A run a worker is executing, or was when it was last seen."""

    run: int
    job: str
    attempt: int
    status: str


def workers_with_runs(*, now: datetime | None = None) -> list[WorkerHeartbeat]:
    """Every process that beat (the schedulers first), each with `gone` (its heartbeat
    stopped) and `runs`: the runs its last heartbeat named, with their jobs and statuses, so
    a killed worker points at the runs it left."""
    now = now or timezone.now()
    heartbeats = list(WorkerHeartbeat.objects.order_by("role", "name"))
    named = {entry["run"] for heartbeat in heartbeats for entry in heartbeat.attempts}
    runs = {
        pk: (job, status)
        for pk, job, status in JobRun.objects.filter(pk__in=named).values_list(
            "pk", "job", "status"
        )
    }
    for heartbeat in heartbeats:
        heartbeat.gone = worker_is_gone(heartbeat, now=now)
        heartbeat.runs = [
            WorkerRun(
                run=entry["run"],
                job=runs[entry["run"]][0],
                attempt=entry["attempt"],
                status=runs[entry["run"]][1],
            )
            for entry in heartbeat.attempts
            if entry["run"] in runs
        ]
    return heartbeats
