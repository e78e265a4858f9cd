"""Every write of the job engine: creating, sending and executing job runs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import traceback
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs.actors import actor_for
from jobs.alerts import alert_run_failed
from jobs.context import JobContext
from jobs.fanout import FanOut, merge_summaries
from jobs.locks import job_lock
from jobs.models import (
    ALLOWED_RUN_TRANSITIONS,
    FINISHED_STATUSES,
    AttemptStatus,
    JobRun,
    JobRunAttempt,
    JobState,
    RunStatus,
    Trigger,
)
from jobs.registry import all_jobs, get_job

logger = logging.getLogger("steward.jobs")

BANNER = "=" * 60
# How long a queued run waits for the holder of its job's lock to show itself before skipping.
HOLDER_WAIT_SECONDS = 2.0
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
    with job_lock(_lock_name(run)) as acquired:
        if not acquired:
            return _skip_overlapping(run)
        run.refresh_from_db()
        if run.is_finished:
            return run
        if run.parent_id is None:
            _abandon_lost_runs(job=run.job, current_run_id=run.pk)
            if waiting := _unfinished_fan_out(job=run.job, time_limit_ms=spec.time_limit_ms):
                return _skip(run, f"the shards of run #{waiting.pk} of {run.job} are still running")
        return _execute_locked(run, spec.body, final_attempt=final_attempt, message_id=message_id)


def _lock_name(run: JobRun) -> str:
    """A job's runs exclude each other; a shard only excludes duplicates of itself."""
    return run.job if run.parent_id is None else f"{run.job}/run-{run.pk}"


def _skip_overlapping(run: JobRun) -> JobRun:
    """The job's lock is held. A run that is no longer queued is being (or was) executed by
    another delivery of its own message: leave it. A queued run is skipped, but only once the
    lock's holder shows itself as running, or after a short wait: the holder may be this very
    run, between taking the lock and recording that it runs."""
    if run.parent_id is not None:
        return _ignore_duplicate(run)
    deadline = time.monotonic() + HOLDER_WAIT_SECONDS
    while True:
        run.refresh_from_db()
        if run.status != RunStatus.QUEUED:
            return _ignore_duplicate(run)
        holder = (
            JobRun.objects.filter(job=run.job, status=RunStatus.RUNNING, parent__isnull=True)
            .exclude(pk=run.pk)
            .first()
        )
        if holder is not None or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    holder_text = f" (run #{holder.pk})" if holder else ""
    return _skip(run, f"another run of {run.job} is in progress{holder_text}")


def _ignore_duplicate(run: JobRun) -> JobRun:
    logger.info(
        "Run #%s of %s is already %s elsewhere; ignoring a duplicate message.",
        run.pk,
        run.job,
        run.status,
    )
    return run


def _skip(run: JobRun, reason: str) -> JobRun:
    if _transition(
        run.pk,
        source={RunStatus.QUEUED},
        target=RunStatus.SKIPPED,
        status_reason=reason,
        finished_at=timezone.now(),
    ):
        logger.warning("Skipped run #%s of %s: %s.", run.pk, run.job, reason)
    run.refresh_from_db()
    return run


def _unfinished_fan_out(*, job: str, time_limit_ms: int) -> JobRun | None:
    """A run of the job still waiting for its shards, unless they outlived the time limit (their
    messages were lost), in which case that run is closed as failed."""
    waiting = JobRun.objects.filter(job=job, status=RunStatus.WAITING).order_by("pk").first()
    if waiting is None:
        return None
    if timezone.now() < waiting.started_at + timedelta(milliseconds=time_limit_ms):
        return waiting
    _finish_parent(waiting.pk, lost_shards=True)
    return None


def _abandon_lost_runs(*, job: str, current_run_id: int) -> None:
    """Runs left `running` without the job lock belong to dead workers: close them."""
    now = timezone.now()
    lost = JobRun.objects.filter(job=job, status=RunStatus.RUNNING, parent__isnull=True).exclude(
        pk=current_run_id
    )
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
    if isinstance(summary, FanOut):
        return _start_shards(run, attempt, summary)
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
    if run.parent_id is not None:
        _finish_parent(run.parent_id)
    elif status == RunStatus.PARTIAL:
        alert_run_failed(run)
    return run


@transaction.atomic
def _start_shards(run: JobRun, attempt: JobRunAttempt, fan_out: FanOut) -> JobRun:
    count = len(fan_out.shards)
    shards = JobRun.objects.bulk_create(
        [
            JobRun(
                job=run.job,
                trigger=run.trigger,
                requested_by=run.requested_by,
                reason=f"shard {shard['index'] + 1}/{count} of run #{run.pk}",
                as_of=run.as_of,
                dry_run=run.dry_run,
                parent=run,
                shard=shard,
                code_version=run.code_version,
            )
            for shard in fan_out.shards
        ]
    )
    _transition(
        run.pk,
        source={RunStatus.RUNNING},
        target=RunStatus.WAITING,
        summary={**fan_out.summary, "shards": count},
        status_reason=f"waiting for {count} shards",
    )
    JobRunAttempt.objects.filter(pk=attempt.pk).update(
        status=AttemptStatus.SUCCEEDED, finished_at=timezone.now()
    )
    for shard in shards:
        job_run_send(run=shard)
    logger.info("Run #%s of %s handed its work to %s shard runs.", run.pk, run.job, count)
    run.refresh_from_db()
    return run


def _finish_parent(parent_id: int, *, lost_shards: bool = False) -> None:
    """End a waiting run once every shard has ended: its summary adds theirs up, and it fails
    if a shard failed after its retries (or, with `lost_shards`, if some never ended)."""
    with transaction.atomic():
        parent = (
            JobRun.objects.select_for_update()
            .filter(pk=parent_id, status=RunStatus.WAITING)
            .first()
        )
        if parent is None:
            return
        shards = list(parent.shards.values_list("status", "summary"))
        unfinished = sum(status not in FINISHED_STATUSES for status, _ in shards)
        if unfinished and not lost_shards:
            return
        failed = sum(status == RunStatus.FAILED for status, _ in shards) + unfinished
        partial = sum(status in (RunStatus.PARTIAL, RunStatus.SKIPPED) for status, _ in shards)
        target = (
            RunStatus.FAILED if failed else RunStatus.PARTIAL if partial else RunStatus.SUCCEEDED
        )
        now = timezone.now()
        problems = []
        if failed:
            problems.append(f"{failed} of {len(shards)} shards failed")
        if unfinished:
            problems.append(f"{unfinished} shards never ended within the job's time limit")
        if partial:
            problems.append(f"{partial} shards partial or skipped")
        _transition(
            parent.pk,
            source={RunStatus.WAITING},
            target=target,
            summary={
                **parent.summary,
                **merge_summaries(summary for status, summary in shards if summary),
                "shards": len(shards),
                "shards_failed": failed,
            },
            error="; ".join(problems) if failed else "",
            status_reason="; ".join(problems),
            finished_at=now,
            duration_ms=int((now - parent.started_at).total_seconds() * 1000),
        )
    parent.refresh_from_db()
    _log_finish(parent)
    if target != RunStatus.SUCCEEDED:
        alert_run_failed(parent)


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
        if run.parent_id is not None:
            _finish_parent(run.parent_id)
        else:
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


class IdempotencyConflict(Exception):
    """An Idempotency-Key was used before for a different request."""


class RunNotRetryable(Exception):
    """Only failed runs are retried."""


def _request_fingerprint(**request) -> str:
    """Equal for equal requests, whatever the order of fields or the offset of a time."""
    canonical = json.dumps(
        request,
        sort_keys=True,
        default=lambda moment: moment.astimezone(UTC).isoformat(),
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@transaction.atomic
def job_run_trigger(
    *,
    job: str,
    trigger: str,
    requested_by: str,
    reason: str,
    as_of: datetime | None = None,
    dry_run: bool = False,
    idempotency_key: str | None = None,
) -> tuple[JobRun, bool]:
    """Record an operator's run and send it; returns the run and whether it is new.

    With an idempotency key, the first request makes the run and a repeat of the same request
    gets that run back; the same key on a different request raises IdempotencyConflict.
    """
    fields = {"job": job, "reason": reason, "as_of": as_of, "dry_run": dry_run}
    if idempotency_key is None:
        run = job_run_create(trigger=trigger, requested_by=requested_by, **fields)
        job_run_send(run=run)
        return run, True
    fingerprint = _request_fingerprint(**fields)
    try:
        with transaction.atomic():
            run = job_run_create(trigger=trigger, requested_by=requested_by, **fields)
            run.idempotency_key = idempotency_key
            run.request_fingerprint = fingerprint
            run.save(update_fields=["idempotency_key", "request_fingerprint"])
    except IntegrityError:
        earlier = JobRun.objects.get(idempotency_key=idempotency_key)
        if earlier.request_fingerprint != fingerprint:
            raise IdempotencyConflict(
                f"Idempotency-Key {idempotency_key!r} was used for a different request "
                f"(run #{earlier.pk})"
            ) from None
        return earlier, False
    job_run_send(run=run)
    return run, True


@transaction.atomic
def job_run_retry_failed(*, run_id: int, requested_by: str, reason: str = "") -> JobRun:
    """Retry a failed run; raises JobRun.DoesNotExist or RunNotRetryable."""
    run = JobRun.objects.select_for_update().get(pk=run_id)
    if run.status != RunStatus.FAILED:
        raise RunNotRetryable(f"run #{run.pk} is {run.status}; only failed runs are retried")
    return job_run_retry(run=run, requested_by=requested_by, reason=reason)


def job_states_ensure() -> None:
    """Give every registered job a state row, so the admin lists them all."""
    JobState.objects.bulk_create(
        [JobState(job=spec.name) for spec in all_jobs()], ignore_conflicts=True
    )
