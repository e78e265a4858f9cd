"""Cancelling runs: a queued run is cancelled at once (its message, when delivered, finds it
finished and is acknowledged without running); a running run is asked to stop and does at its
next batch boundary, keeping the batches it committed; a fanned-out run cancels its shards and
ends once they have."""

from __future__ import annotations

import functools
import logging

from django.db import transaction
from django.utils import timezone

from jobs.audit import audited_reason, control_action_record
from jobs.exceptions import RunNotCancellable, UnknownRun
from jobs.fanout import fan_out_finish
from jobs.models import (
    FINISHED_STATUSES,
    ControlAction,
    JobRun,
    RunStatus,
    cancel_text,
    run_move,
)

logger = logging.getLogger("steward.jobs")


@transaction.atomic
def job_run_cancel(*, run: JobRun | int, by: str, reason: str = "") -> JobRun:
    """Cancel a run that has not finished; RunNotCancellable when it has, UnknownRun when there
    is no such run. Cancelling a run already asked to stop changes nothing more."""
    reason = audited_reason(reason)
    run_id = run.pk if isinstance(run, JobRun) else run
    locked = JobRun.objects.select_for_update().filter(pk=run_id).first()
    if locked is None:
        raise UnknownRun(run_id)
    if locked.is_finished:
        raise RunNotCancellable(
            f"run #{locked.pk} is already {locked.status}; only a queued, running or waiting "
            "run can be cancelled"
        )
    if locked.cancel_requested_at is not None:
        return locked
    now = timezone.now()
    before = {"status": locked.status}
    JobRun.objects.filter(pk=locked.pk).update(
        cancel_requested_at=now, cancel_requested_by=by, cancel_reason=reason
    )
    if locked.status == RunStatus.QUEUED:
        run_cancelled(locked, by=by, reason=reason)
        if locked.parent_id is not None:
            # A shard: the last of its parent's shards to end ends the parent.
            transaction.on_commit(functools.partial(fan_out_finish, locked.parent_id))
    elif locked.status == RunStatus.WAITING:
        _cancel_shards(locked, by=by, reason=reason, now=now)
    locked.refresh_from_db()
    control_action_record(
        action=ControlAction.Action.RUN_CANCELLED,
        target_type=ControlAction.Target.RUN,
        target=f"#{locked.pk} {locked.job}",
        actor=by,
        reason=reason,
        before=before,
        after={
            "status": locked.status,
            "stopping": locked.status in (RunStatus.RUNNING, RunStatus.WAITING),
        },
    )
    return locked


def run_cancelled(run: JobRun, *, by: str, reason: str, source=RunStatus.QUEUED) -> bool:
    """Move a queued (or, from the runner, running) run to `cancelled`."""
    now = timezone.now()
    started = run.started_at
    moved = run_move(
        run.pk,
        source={source},
        target=RunStatus.CANCELLED,
        status_reason=cancel_text(by, reason),
        finished_at=now,
        duration_ms=int((now - started).total_seconds() * 1000) if started else None,
    )
    if moved:
        logger.warning("Run #%s of %s %s.", run.pk, run.job, cancel_text(by, reason))
    return moved


def _cancel_shards(parent: JobRun, *, by: str, reason: str, now) -> None:
    shards = parent.shards.exclude(status__in=FINISHED_STATUSES)
    shards.filter(status=RunStatus.RUNNING).update(
        cancel_requested_at=now, cancel_requested_by=by, cancel_reason=reason
    )
    for shard in shards.filter(status=RunStatus.QUEUED):
        JobRun.objects.filter(pk=shard.pk).update(
            cancel_requested_at=now, cancel_requested_by=by, cancel_reason=reason
        )
        run_cancelled(shard, by=by, reason=reason)
    # The last shard to end ends its parent; here, the parent ends if none is left running.
    transaction.on_commit(lambda: fan_out_finish(parent.pk))


def cancel_requested(run_id: int) -> tuple[str, str] | None:
    """(by, reason) when an operator asked the run to stop, else None."""
    return (
        JobRun.objects.filter(pk=run_id, cancel_requested_at__isnull=False)
        .values_list("cancel_requested_by", "cancel_reason")
        .first()
    )
