"""The engine's own retention: `prune_job_runs`, a job the engine registers itself.

Failed and partial runs are kept for `FAILED_RUN_RETENTION_DAYS`, other finished runs for
`RUN_RETENTION_DAYS`; a top-level run's shards and attempts are deleted with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q

from jobs.conf import conf
from jobs.context import JobContext
from jobs.models import JobRun, RunStatus
from jobs.registry import JobSpec, register
from jobs.sweeps import ProgressCallback, delete_in_batches

KEPT_LONGER = (RunStatus.FAILED, RunStatus.PARTIAL)


def job_runs_expired(*, as_of: datetime):
    """Finished top-level runs past their retention."""
    kept = as_of - timedelta(days=conf.RUN_RETENTION_DAYS)
    kept_failed = as_of - timedelta(days=conf.FAILED_RUN_RETENTION_DAYS)
    return JobRun.objects.filter(parent__isnull=True).filter(
        Q(status__in=[RunStatus.SUCCEEDED, RunStatus.SKIPPED, RunStatus.LOST], finished_at__lt=kept)
        | Q(status__in=KEPT_LONGER, finished_at__lt=kept_failed)
    )


def job_runs_prune_preview(*, as_of: datetime) -> dict:
    expired = job_runs_expired(as_of=as_of)
    return {
        "job_runs_deleted": JobRun.objects.filter(Q(pk__in=expired) | Q(parent__in=expired)).count()
    }


def job_runs_prune(
    *, as_of: datetime, batch_size: int, on_progress: ProgressCallback | None = None
) -> dict:
    deleted = delete_in_batches(
        lambda: job_runs_expired(as_of=as_of),
        key="job_runs_deleted",
        batch_size=batch_size,
        on_progress=on_progress,
    )
    return {"job_runs_deleted": deleted}


def prune_job_runs(context: JobContext) -> dict:
    if context.dry_run:
        return {"dry_run": True, **job_runs_prune_preview(as_of=context.as_of)}
    return job_runs_prune(
        as_of=context.as_of,
        batch_size=context.batch_size,
        on_progress=lambda done: context.progress(done=done, total=None, what="runs pruned"),
    )


def register_retention_job() -> None:
    register(
        JobSpec(
            name="prune_job_runs",
            body=prune_job_runs,
            cron="15 3 * * *",
            description="Delete finished runs past their retention (failed and partial ones "
            "are kept longer), with their shards and attempts.",
        )
    )
