"""What one attempt of a run came to: its outcome decided from the body's result or error,
and the run's own lines on it. The runner saves it (`jobs.runner`)."""

from __future__ import annotations

import dataclasses
import logging
import traceback

from jobs.context import JobContext
from jobs.exceptions import PERMANENT_ERRORS, RunCancelled, RunInterrupted
from jobs.fanout import FanOut
from jobs.models import AttemptStatus, JobRun, JobRunAttempt, RunStatus
from jobs.runlog import RunLog

logger = logging.getLogger("steward.jobs")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one attempt came to: the run's next status and what is saved with it."""

    status: str
    attempt_status: str
    run_fields: dict
    attempt_fields: dict = dataclasses.field(default_factory=dict)
    fan_out: FanOut | None = None


def outcome_of_success(context: JobContext, result) -> Outcome:
    if isinstance(result, FanOut):
        count = len(result.shards)
        return Outcome(
            status=RunStatus.WAITING,
            attempt_status=AttemptStatus.SUCCEEDED,
            run_fields={
                "summary": {**result.summary, "shards": count},
                "status_reason": f"waiting for {count} shards",
            },
            fan_out=result,
        )
    return Outcome(
        status=RunStatus.PARTIAL if context.partial_reasons else RunStatus.SUCCEEDED,
        attempt_status=AttemptStatus.SUCCEEDED,
        run_fields={
            "summary": result,
            "status_reason": "; ".join(context.partial_reasons),
        },
    )


def outcome_of_stop(exc: RunCancelled | RunInterrupted) -> Outcome:
    if isinstance(exc, RunCancelled):
        return Outcome(
            status=RunStatus.CANCELLED,
            attempt_status=AttemptStatus.CANCELLED,
            run_fields={
                "status_reason": str(exc),
                "summary": {f"{exc.what or 'items'}_done": exc.done} if exc.what else {},
            },
            attempt_fields={"error": str(exc)},
        )
    return Outcome(
        status=RunStatus.QUEUED,
        attempt_status=AttemptStatus.ABANDONED,
        run_fields={"status_reason": f"handed back: {exc}"},
        attempt_fields={"error": str(exc)},
    )


def outcome_of_error(exc: BaseException, attempt: JobRunAttempt, *, final_attempt: bool) -> Outcome:
    error = f"{type(exc).__name__}: {exc}"
    trace = traceback.format_exc()
    failure = {"error": error, "traceback": trace}
    if isinstance(exc, PERMANENT_ERRORS):
        reason = f"failed on attempt {attempt.number}, not retried: no retry can fix {error}"
    elif final_attempt:
        reason = f"failed after {attempt.number} attempt(s): {error}"
    else:
        reason = ""
    if reason:
        return Outcome(
            status=RunStatus.FAILED,
            attempt_status=AttemptStatus.FAILED,
            run_fields={**failure, "status_reason": reason},
            attempt_fields=failure,
        )
    return Outcome(
        status=RunStatus.QUEUED,
        attempt_status=AttemptStatus.FAILED,
        run_fields={**failure, "status_reason": f"attempt {attempt.number} failed; retrying"},
        attempt_fields=failure,
    )


def outcome_log(run: JobRun, attempt: JobRunAttempt, outcome: Outcome, *, run_log: RunLog):
    """The run's own lines on its outcome: kept with its attempt as well as logged."""
    fields = {"extra": run_log.fields}
    if outcome.fan_out is not None:
        logger.info(
            "Run #%s of %s handed its work to %s shard runs.",
            run.pk,
            run.job,
            len(outcome.fan_out.shards),
            **fields,
        )
    elif outcome.attempt_status == AttemptStatus.ABANDONED:
        logger.warning("Run #%s of %s %s.", run.pk, run.job, run.status_reason, **fields)
    elif outcome.status == RunStatus.QUEUED:
        logger.warning(
            "Attempt %s of %s run #%s failed (%s); it will be retried.",
            attempt.number,
            run.job,
            run.pk,
            run.error,
            **fields,
        )
    elif outcome.status == RunStatus.FAILED:
        logger.error("Job failed: %s run #%s %s", run.job, run.pk, run.status_reason, **fields)
    else:
        if outcome.status == RunStatus.CANCELLED:
            logger.warning("Run #%s of %s %s.", run.pk, run.job, run.status_reason, **fields)
        run_log.finish(run)
