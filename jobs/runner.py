"""Executing a run: claim it, hold its job's lock, run one attempt, decide and save the outcome.

The outcome of an attempt is decided in one place (`jobs.outcomes`) and saved in one place
(`_save_outcome`); a fanned-out run is ended by `fan_out_finish` once
its last shard has ended; either then requests the run's follow-ups (`jobs.follow_ups`). Safe
under duplicate delivery: a finished run is left alone, a run in progress elsewhere is left
alone, and a queued run that finds another run of its job in progress ends `skipped`.
"""

from __future__ import annotations

import functools
import logging
import time
from contextlib import nullcontext
from datetime import datetime

from django.db import connection, transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from jobs import heartbeats
from jobs.alerts import alert_run_failed
from jobs.cancellation import run_cancelled
from jobs.context import JobContext
from jobs.exceptions import RunCancelled, RunInterrupted
from jobs.fanout import fan_out_finish, fan_out_unfinished
from jobs.follow_ups import follow_ups_request
from jobs.heartbeats import WORKER_LOST
from jobs.locks import JobLock, run_locked
from jobs.models import (
    FINISHED_STATUSES,
    JobRun,
    JobRunAttempt,
    RunStatus,
    run_move,
)
from jobs.outcomes import (
    Outcome,
    outcome_log,
    outcome_of_error,
    outcome_of_stop,
    outcome_of_success,
)
from jobs.registry import get_job
from jobs.rescue import fan_out_repair
from jobs.run_writes import elapsed_ms, run_claim, run_finish
from jobs.runlog import RunLog, run_log_lines, run_log_save
from jobs.services import job_shards_request

logger = logging.getLogger("steward.jobs")

# How long a queued run waits for the holder of its job's lock to show itself before skipping.
HOLDER_WAIT_SECONDS = 2.0


def job_run_execute(
    *,
    run_id: int,
    final_attempt: bool = True,
    message_id: str = "",
    queued_at: datetime | None = None,
) -> JobRun:
    """Execute one attempt of a run under the job's lock and record its outcome.

    An exception from the body is recorded on the attempt and re-raised so Dramatiq retries;
    on the final attempt the run is `failed` and an alert goes out.
    """
    with run_locked(run_id) as (run, lock):
        if run.is_finished:
            logger.info(
                "Run #%s of %s already %s; ignoring a duplicate message.",
                run.pk,
                run.job,
                run.status,
            )
            return JobRun.objects.get(pk=run_id)
        spec = get_job(run.job)
        claimed = lock.acquired and run_claim(
            run_id,
            now=timezone.now(),
            worker=heartbeats.worker_name(),
            message_id=message_id,
            queued_at=queued_at,
        )
        if claimed:
            # The common case, in one statement: a queued run whose job has nothing open.
            return _run_attempt(*claimed, spec.body, final_attempt=final_attempt, lock=lock)
        run = JobRun.objects.get(pk=run_id)
        if not lock.acquired:
            return _skip_overlapping(run)
        if run.is_finished:
            return run
        if run.cancel_requested_at is not None and run.status != RunStatus.WAITING:
            # Cancelled while its message waited for a retry or a rescue: it stops here. (A
            # waiting run ends once its shards have; a duplicate of its message waits too.)
            if run.status == RunStatus.RUNNING:
                # Its last attempt died with its worker.
                heartbeats.attempts_abandon(run, now=timezone.now())
            run_cancelled(
                run, by=run.cancel_requested_by, reason=run.cancel_reason, source=run.status
            )
            if run.parent_id is not None:
                fan_out_finish(run.parent_id)
            run.refresh_from_db()
            return run
        if run.parent_id is None:
            others = _other_open_runs(run)
            _abandon_lost_runs([other for other in others if other.status == RunStatus.RUNNING])
            waiting = [other for other in others if other.status == RunStatus.WAITING]
            if waiting := fan_out_unfinished(waiting, time_limit_ms=spec.time_limit_ms):
                # Shards a dead worker held or whose messages were lost go back to the fleet;
                # this run waits only while the shards are really on their way.
                fan_out_repair(waiting)
                if JobRun.objects.filter(pk=waiting.pk, status=RunStatus.WAITING).exists():
                    reason = f"the shards of run #{waiting.pk} of {run.job} are still running"
                    return _skip(run, reason)
        attempt = _start_attempt(run, message_id=message_id, queued_at=queued_at)
        if attempt is None:
            run.refresh_from_db()
            return run
        return _run_attempt(run, attempt, spec.body, final_attempt=final_attempt, lock=lock)


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
            JobRun.objects.filter(
                job=run.job,
                lock_scope=run.lock_scope,
                status=RunStatus.RUNNING,
                parent__isnull=True,
            )
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
    if run_move(
        run.pk,
        source={RunStatus.QUEUED},
        target=RunStatus.SKIPPED,
        status_reason=reason,
        finished_at=timezone.now(),
    ):
        logger.warning("Skipped run #%s of %s: %s.", run.pk, run.job, reason)
    run.refresh_from_db()
    return run


def _other_open_runs(run: JobRun) -> list[JobRun]:
    """The job's other top-level runs of its lock scope that hold work open: running, or
    waiting for shards."""
    return list(
        JobRun.objects.filter(
            job=run.job,
            lock_scope=run.lock_scope,
            status__in=[RunStatus.RUNNING, RunStatus.WAITING],
            parent__isnull=True,
        )
        .exclude(pk=run.pk)
        .only("job", "status", "started_at", "parent_id")
        .order_by("pk")
    )


def _abandon_lost_runs(lost: list[JobRun]) -> None:
    """Runs left `running` while this run holds the job lock belong to dead workers: close
    them."""
    now = timezone.now()
    for lost_run in lost:
        if run_move(
            lost_run.pk,
            source={RunStatus.RUNNING},
            target=RunStatus.FAILED,
            error=WORKER_LOST,
            finished_at=now,
        ):
            heartbeats.attempts_abandon(lost_run, now=now)
            lost_run.refresh_from_db()
            alert_run_failed(lost_run)


def _start_attempt(
    run: JobRun, *, message_id: str, queued_at: datetime | None
) -> JobRunAttempt | None:
    """Claim the run for a new attempt, with how long its message waited for a worker; None
    when another delivery got there first."""
    now = timezone.now()
    if run.status == RunStatus.RUNNING:
        # Our own earlier attempt died with its worker; this delivery takes the run over.
        heartbeats.attempts_abandon(run, now=now)
    number = run.attempt_count + 1
    if not run_move(
        run.pk,
        source={RunStatus.QUEUED, RunStatus.RUNNING},
        target=RunStatus.RUNNING,
        started_at=Coalesce("started_at", now),
        attempt_count=number,
    ):
        return None
    # What the update wrote, without reading the row back.
    run.status, run.attempt_count = RunStatus.RUNNING, number
    run.started_at = run.started_at or now
    return JobRunAttempt.objects.create(
        run=run,
        number=number,
        started_at=now,
        worker=heartbeats.worker_name(),
        message_id=message_id,
        queued_at=queued_at,
        wait_ms=None if queued_at is None else max(elapsed_ms(queued_at, now), 0),
    )


def _run_attempt(
    run: JobRun, attempt: JobRunAttempt, body, *, final_attempt: bool, lock: JobLock
) -> JobRun:
    run_log = RunLog(run, attempt.number)
    context = JobContext(
        run=run, as_of=run.as_of, dry_run=run.dry_run, params=run.params, run_log=run_log
    )
    heartbeats.attempt_started(run_id=run.pk, number=attempt.number)
    # Inside a caller's transaction, a savepoint keeps a failed body from aborting it, so the
    # failure can still be recorded; on its own the body commits batch by batch.
    body_scope = transaction.atomic() if connection.in_atomic_block else nullcontext()
    save = functools.partial(_save_outcome, run, attempt, run_log=run_log, lock=lock)
    try:
        with body_scope:
            result = body(context)
    except (RunCancelled, RunInterrupted) as exc:
        # Neither is a failure: the run ends cancelled, or goes back to its queue.
        return save(outcome_of_stop(exc))
    except BaseException as exc:
        save(outcome_of_error(exc, attempt, final_attempt=final_attempt))
        raise
    finally:
        heartbeats.attempt_ended()
    return save(outcome_of_success(context, result))


def _save_outcome(
    run: JobRun, attempt: JobRunAttempt, outcome: Outcome, *, run_log: RunLog, lock: JobLock
) -> JobRun:
    """Save the outcome of an attempt, then alert and end the parent as it calls for.

    The outcome is logged first, from the run as it will be saved, so that its lines are kept
    with the attempt by the one statement that saves the run's outcome and closes the attempt,
    and that statement also releases the job's lock where it can. A fan-out commits its shards
    with the parent's change of state.
    """
    now = timezone.now()
    run_fields = dict(outcome.run_fields)
    if outcome.status in FINISHED_STATUSES:
        # From the first attempt's start: the duration covers every attempt.
        run_fields["finished_at"] = now
        run_fields["duration_ms"] = elapsed_ms(run.started_at, now)
    run.status = outcome.status
    for field, value in run_fields.items():
        setattr(run, field, value)
    outcome_log(run, attempt, outcome, run_log=run_log)
    lines = run_log_lines(run.pk, attempt.number)
    with transaction.atomic() if outcome.fan_out is not None else nullcontext():
        unlock_key = lock.key_to_release()
        moved = run_finish(
            run,
            attempt,
            status=outcome.status,
            run_fields=run_fields,
            attempt_status=outcome.attempt_status,
            attempt_fields={"finished_at": now, "log": lines or [], **outcome.attempt_fields},
            unlock_key=unlock_key,
        )
        lock.released = unlock_key is not None
        if outcome.fan_out is not None:
            job_shards_request(parent=run, shards=outcome.fan_out.shards)
    if not moved:
        run.refresh_from_db()
        logger.warning(
            "Run #%s of %s was %s already: this attempt's outcome (%s) was not saved.",
            run.pk,
            run.job,
            run.status,
            outcome.status,
            extra=run_log.fields,
        )
    # After the outcome is saved, and logged with the run's own lines.
    follow_ups_request(run=run)
    run_log_save(run.pk, attempt.number, final=True, saved=lines)
    if run.is_finished:
        if run.parent_id is not None:
            fan_out_finish(run.parent_id)
        elif run.status not in (RunStatus.SUCCEEDED, RunStatus.CANCELLED):
            alert_run_failed(run)
    return run
