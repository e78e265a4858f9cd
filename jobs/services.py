"""Every write of the job engine: creating, sending and executing job runs."""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from contextlib import nullcontext
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs.actors import actor_for
from jobs.alerts import alert_run_failed
from jobs.context import JobContext
from jobs.locks import job_lock
from jobs.models import (
    ALLOWED_RUN_TRANSITIONS,
    AttemptStatus,
    JobRun,
    JobRunAttempt,
    RunStatus,
    Trigger,
)
from jobs.registry import get_job

logger = logging.getLogger("steward.jobs")

BANNER = "=" * 60
WORKER_LOST = "worker lost: its job lock vanished while the run was running"


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _transition(run_id: int, *, source: set[str], target: str, **fields) -> bool:
    """Conditionally move a run from one of `source` to `target`; False if it was not there."""
    for status in source:
        if target not in ALLOWED_RUN_TRANSITIONS[status]:
            raise ValueError(f"a run may not go from {status} to {target}")
    updated = JobRun.objects.filter(pk=run_id, status__in=source).update(status=target, **fields)
    return updated == 1


@transaction.atomic
def job_run_create(
    *,
    job: str,
    trigger: str,
    requested_by: str = "",
    reason: str = "",
    as_of: datetime | None = None,
    dry_run: bool = False,
    slot: datetime | None = None,
    retry_of: JobRun | None = None,
) -> JobRun:
    """Record a queued run. Raises UnknownJob for a name nobody registered."""
    get_job(job)
    return JobRun.objects.create(
        job=job,
        trigger=Trigger(trigger),
        requested_by=requested_by,
        reason=reason,
        as_of=as_of or timezone.now(),
        dry_run=dry_run,
        slot=slot,
        retry_of=retry_of,
        code_version=settings.STEWARD_CODE_VERSION,
    )


def job_run_send(*, run: JobRun) -> None:
    """Send the run's message to the workers once the surrounding transaction commits."""
    actor = actor_for(run.job)
    message = actor.message(run.pk)
    JobRun.objects.filter(pk=run.pk).update(message_id=message.message_id)
    run.message_id = message.message_id
    transaction.on_commit(lambda: actor.broker.enqueue(message))


@transaction.atomic
def job_run_enqueue(
    *,
    job: str,
    trigger: str,
    requested_by: str = "",
    reason: str = "",
    as_of: datetime | None = None,
    dry_run: bool = False,
) -> JobRun:
    """Record a run and hand it to the workers."""
    run = job_run_create(
        job=job,
        trigger=trigger,
        requested_by=requested_by,
        reason=reason,
        as_of=as_of,
        dry_run=dry_run,
    )
    job_run_send(run=run)
    return run


@transaction.atomic
def job_run_retry(*, run: JobRun, requested_by: str, reason: str = "") -> JobRun:
    """A new run of a finished run's job, linked to it, sent to the workers."""
    retry = job_run_create(
        job=run.job,
        trigger=Trigger.RETRY,
        requested_by=requested_by,
        reason=reason or f"retry of run #{run.pk}",
        dry_run=run.dry_run,
        retry_of=run,
    )
    job_run_send(run=retry)
    return retry


def job_run_execute(*, run_id: int, final_attempt: bool = True, message_id: str = "") -> JobRun:
    """Execute one attempt of a run under the job's lock and record its outcome.

    Safe under duplicate delivery: a finished run is left alone, a run in progress elsewhere is
    left alone, and a queued run that finds another run of its job in progress ends `skipped`.
    An exception from the body is recorded on the attempt and re-raised so Dramatiq retries; on
    the final attempt the run is `failed` and an alert goes out.
    """
    run = JobRun.objects.get(pk=run_id)
    if run.is_finished:
        logger.info(
            "Run #%s of %s already %s; ignoring a duplicate message.", run.pk, run.job, run.status
        )
        return run
    spec = get_job(run.job)
    with job_lock(run.job) as acquired:
        if not acquired:
            return _skip_overlapping(run)
        run.refresh_from_db()
        if run.is_finished:
            return run
        _abandon_lost_runs(job=run.job, current_run_id=run.pk)
        return _execute_locked(run, spec.body, final_attempt=final_attempt, message_id=message_id)


def _skip_overlapping(run: JobRun) -> JobRun:
    holder = JobRun.objects.filter(job=run.job, status=RunStatus.RUNNING).exclude(pk=run.pk).first()
    if run.status == RunStatus.RUNNING and holder is None:
        logger.info(
            "Run #%s of %s is already running elsewhere; ignoring a duplicate message.",
            run.pk,
            run.job,
        )
        return run
    holder_text = f" (run #{holder.pk})" if holder else ""
    reason = f"another run of {run.job} is in progress{holder_text}"
    now = timezone.now()
    if _transition(
        run.pk,
        source={RunStatus.QUEUED},
        target=RunStatus.SKIPPED,
        status_reason=reason,
        finished_at=now,
    ):
        logger.warning("Skipped run #%s of %s: %s.", run.pk, run.job, reason)
    run.refresh_from_db()
    return run


def _abandon_lost_runs(*, job: str, current_run_id: int) -> None:
    """Runs left `running` without the job lock belong to dead workers: close them."""
    now = timezone.now()
    lost = JobRun.objects.filter(job=job, status=RunStatus.RUNNING).exclude(pk=current_run_id)
    for lost_run in lost:
        if _transition(
            lost_run.pk,
            source={RunStatus.RUNNING},
            target=RunStatus.FAILED,
            error=WORKER_LOST,
            finished_at=now,
        ):
            JobRunAttempt.objects.filter(run=lost_run, status=AttemptStatus.RUNNING).update(
                status=AttemptStatus.ABANDONED, finished_at=now, error=WORKER_LOST
            )
            lost_run.refresh_from_db()
            alert_run_failed(lost_run)


def _execute_locked(run: JobRun, body, *, final_attempt: bool, message_id: str) -> JobRun:
    now = timezone.now()
    if run.status == RunStatus.RUNNING:
        # Our own earlier attempt died with its worker; this delivery takes the run over.
        JobRunAttempt.objects.filter(run=run, status=AttemptStatus.RUNNING).update(
            status=AttemptStatus.ABANDONED, finished_at=now, error=WORKER_LOST
        )
    attempt_number = run.attempt_count + 1
    if not _transition(
        run.pk,
        source={RunStatus.QUEUED, RunStatus.RUNNING},
        target=RunStatus.RUNNING,
        started_at=Coalesce("started_at", now),
        attempt_count=attempt_number,
    ):
        run.refresh_from_db()
        return run
    attempt = JobRunAttempt.objects.create(
        run=run,
        number=attempt_number,
        started_at=now,
        worker=_worker_name(),
        message_id=message_id,
    )
    run.refresh_from_db()
    context = JobContext(run=run, as_of=run.as_of, dry_run=run.dry_run)
    _log_start(run, attempt_number)
    started = time.monotonic()
    # Inside a caller's transaction, a savepoint keeps a failed body from aborting it, so the
    # failure can still be recorded; on its own the body commits batch by batch.
    body_scope = transaction.atomic() if connection.in_atomic_block else nullcontext()
    try:
        with body_scope:
            summary = body(context)
    except BaseException as exc:
        _record_failure(
            run, attempt, exc, final_attempt=final_attempt, duration_ms=_elapsed_ms(started)
        )
        raise
    duration_ms = _elapsed_ms(started)
    status = RunStatus.PARTIAL if context.partial_reasons else RunStatus.SUCCEEDED
    finished = timezone.now()
    _transition(
        run.pk,
        source={RunStatus.RUNNING},
        target=status,
        summary=summary,
        status_reason="; ".join(context.partial_reasons),
        finished_at=finished,
        duration_ms=duration_ms,
    )
    JobRunAttempt.objects.filter(pk=attempt.pk).update(
        status=AttemptStatus.SUCCEEDED, finished_at=finished
    )
    run.refresh_from_db()
    _log_finish(run)
    if status == RunStatus.PARTIAL:
        alert_run_failed(run)
    return run


def _record_failure(
    run, attempt, exc: BaseException, *, final_attempt: bool, duration_ms: int
) -> None:
    error = f"{type(exc).__name__}: {exc}"
    trace = traceback.format_exc()
    finished = timezone.now()
    JobRunAttempt.objects.filter(pk=attempt.pk).update(
        status=AttemptStatus.FAILED, finished_at=finished, error=error, traceback=trace
    )
    if final_attempt:
        _transition(
            run.pk,
            source={RunStatus.RUNNING},
            target=RunStatus.FAILED,
            error=error,
            traceback=trace,
            finished_at=finished,
            duration_ms=duration_ms,
        )
        run.refresh_from_db()
        logger.error(
            "Job failed: %s run #%s after %s attempt(s): %s",
            run.job,
            run.pk,
            run.attempt_count,
            error,
        )
        alert_run_failed(run)
    else:
        _transition(
            run.pk,
            source={RunStatus.RUNNING},
            target=RunStatus.QUEUED,
            error=error,
            traceback=trace,
            status_reason=f"attempt {attempt.number} failed; retrying",
        )
        logger.warning(
            "Attempt %s of %s run #%s failed (%s); it will be retried.",
            attempt.number,
            run.job,
            run.pk,
            error,
        )


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _log_start(run: JobRun, attempt_number: int) -> None:
    mode = " (dry run)" if run.dry_run else ""
    logger.info(BANNER)
    logger.info("Running job: %s%s, run #%s, attempt %s", run.job, mode, run.pk, attempt_number)
    logger.info(
        "   Trigger: %s%s", run.trigger, f" by {run.requested_by}" if run.requested_by else ""
    )
    logger.info("   As of: %s", run.as_of.isoformat())
    logger.info(BANNER)


def _log_finish(run: JobRun) -> None:
    logger.info("%s Summary:", run.job)
    for key, value in run.summary.items():
        logger.info("   %s: %s", key.replace("_", " ").capitalize(), value)
    logger.info(BANNER)
    logger.info("Job %s: %s run #%s", run.status, run.job, run.pk)
    logger.info("   Duration: %sms", run.duration_ms)
    logger.info("   Completed at: %s", run.finished_at.isoformat())
    logger.info(BANNER)
