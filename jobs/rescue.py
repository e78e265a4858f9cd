"""No run left behind: `rescue_runs`, the engine's own job that repairs what crashes and lost
messages leave open (Oban's Lifeline, BullMQ's stalled-job checker).

- A run or shard `running` that nobody executes any more (its job lock is free, on PostgreSQL;
  its worker's heartbeat gone, elsewhere) gets its attempt closed as abandoned and is re-sent,
  unless an operator cancelled it (it ends `cancelled`), its retries are spent (then it
  fails) or a later run already did its work (`lost`).
- A run still `queued` whose message is in no queue `LOST_RUN_AFTER` seconds after it was sent
  is re-sent once; found lost again, or superseded by a later run, it is closed as `lost`.
- A fanned-out run whose shards have all ended is ended.
- The fleet-wide concurrency slots a dead worker held (as its last heartbeat says) are given
  back, so a queue capped at one is not blocked for good by a killed worker.

Every repair is logged with the run id and recorded in the run's `repairs`. Every job is an
idempotent sweep, so a re-sent run whose first message was only delayed changes nothing twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import dramatiq
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name
from dramatiq.message import generate_unique_id

from jobs.alerts import alert_run_failed
from jobs.cancellation import run_cancelled
from jobs.conf import conf
from jobs.context import JobContext
from jobs.fanout import fan_out_finish
from jobs.heartbeats import WORKER_LOST, attempts_abandon, worker_is_gone
from jobs.locks import job_lock, run_lock_name
from jobs.models import (
    FINISHED_STATUSES,
    AttemptStatus,
    JobRun,
    RunStatus,
    WorkerHeartbeat,
    run_move,
)
from jobs.ratelimits import concurrency_slots_return
from jobs.registry import JobSpec, all_jobs, get_job, register
from jobs.services import job_runs_send

logger = logging.getLogger("steward.rescue")

MESSAGE_RESENT = "message lost"
DID_THE_WORK = (RunStatus.SUCCEEDED, RunStatus.PARTIAL)


def runs_rescue(
    *, now: datetime | None = None, exclude_run_id: int | None = None, dry_run: bool = False
) -> dict:
    """Repair every open run that a crash or a lost message left behind; the repair counts
    (with `dry_run`, what would be repaired, changing nothing)."""
    now = now or timezone.now()
    counts: Counter = Counter()
    running = JobRun.objects.filter(status=RunStatus.RUNNING).exclude(pk=exclude_run_id)
    for run in running.order_by("pk"):
        with _abandoned(run, now=now) as abandoned:
            if abandoned:
                counts["runs_abandoned" if dry_run else _take_back(run, now=now)] += 1
    counts.update(_resend_lost_messages(now=now, dry_run=dry_run))
    counts.update(_return_dead_workers_slots(now=now, dry_run=dry_run))
    for parent_id in _parents_with_every_shard_ended():
        if not dry_run:
            fan_out_finish(parent_id)
        counts["parents_ended"] += 1
    return dict(counts)


def fan_out_repair(parent: JobRun, *, now: datetime | None = None) -> None:
    """Repair one fanned-out run's shards at once: taken back from dead workers, their lost
    messages re-sent whatever their age (a crash is evidence enough), and the parent ended
    when they all have."""
    now = now or timezone.now()
    for shard in parent.shards.filter(status=RunStatus.RUNNING).order_by("pk"):
        with _abandoned(shard, now=now) as abandoned:
            if abandoned:
                _take_back(shard, now=now)
    queued = parent.shards.filter(status=RunStatus.QUEUED).order_by("pk")
    _resend_absent(list(queued), now=now, dry_run=False)
    if not parent.shards.exclude(status__in=FINISHED_STATUSES).exists():
        fan_out_finish(parent.pk)


@contextmanager
def _abandoned(run: JobRun, *, now: datetime) -> Iterator[bool]:
    """Whether a `running` run has no live executor, holding its lock meanwhile so that no
    redelivery starts it while it is taken back. On PostgreSQL the lock says so at once: an
    executor holds it for the whole attempt, and a killed one's connection lets it go.
    Elsewhere the executing worker's heartbeat does."""
    if connection.vendor == "postgresql":
        with job_lock(run_lock_name(run)) as lock:
            yield (
                lock.acquired
                and JobRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).exists()
            )
        return
    attempt = run.attempts.filter(status=AttemptStatus.RUNNING).order_by("-number").first()
    if attempt is None or attempt.started_at > now - timedelta(seconds=conf.WORKER_LOST_AFTER):
        yield False
        return
    heartbeat = WorkerHeartbeat.objects.filter(name=attempt.worker).first()
    yield worker_is_gone(heartbeat, now=now)


@transaction.atomic
def _take_back(run: JobRun, *, now: datetime) -> str:
    run = JobRun.objects.select_for_update().get(pk=run.pk)
    if run.status != RunStatus.RUNNING:
        return "already_repaired"
    attempts_abandon(run, now=now)
    if run.cancel_requested_at is not None:
        # An operator asked it to stop: it ends cancelled, neither failed nor re-sent.
        run_cancelled(run, by=run.cancel_requested_by, reason=run.cancel_reason, source=run.status)
        transaction.on_commit(lambda: _after_close(run.pk))
        return "runs_cancelled"
    spec = get_job(run.job)
    if run.attempt_count > spec.max_retries:
        run_move(
            run.pk,
            source={RunStatus.RUNNING},
            target=RunStatus.FAILED,
            error=WORKER_LOST,
            status_reason=f"{WORKER_LOST}, on the last of {run.attempt_count} attempts",
            finished_at=now,
            repairs=_repaired(run, now=now, what="worker lost; retries spent"),
        )
        logger.error("Run #%s of %s failed: %s on its last attempt.", run.pk, run.job, WORKER_LOST)
        transaction.on_commit(lambda: _after_close(run.pk))
        return "runs_failed"
    if later := _superseding_run(run):
        _close_lost(run, now=now, source=RunStatus.RUNNING, why=f"superseded by run #{later}")
        return "runs_lost"
    _resend(
        run, now=now, source=RunStatus.RUNNING, what=f"worker lost on attempt {run.attempt_count}"
    )
    return "runs_taken_back"


def _resend_lost_messages(*, now: datetime, dry_run: bool) -> Counter:
    cutoff = now - timedelta(seconds=conf.LOST_RUN_AFTER)
    candidates = [
        run
        for run in JobRun.objects.filter(status=RunStatus.QUEUED, created_at__lte=cutoff).only(
            "pk", "job", "created_at", "repairs", "parent_id", "dry_run", "message_id", "urgent"
        )
        if _sent_at(run) <= cutoff
    ]
    return _resend_absent(candidates, now=now, dry_run=dry_run)


def _resend_absent(candidates: list[JobRun], *, now: datetime, dry_run: bool) -> Counter:
    counts: Counter = Counter()
    if not candidates:
        return counts
    present = _runs_with_a_message()
    if present is None:
        return counts
    for run in candidates:
        if run.pk not in present:
            counts["messages_lost" if dry_run else _repair_lost_message(run, now=now)] += 1
    return counts


@transaction.atomic
def _repair_lost_message(run: JobRun, *, now: datetime) -> str:
    run = JobRun.objects.select_for_update().get(pk=run.pk)
    if run.status != RunStatus.QUEUED:
        return "already_repaired"
    if any(repair["what"] == MESSAGE_RESENT for repair in run.repairs):
        _close_lost(run, now=now, source=RunStatus.QUEUED, why="its message was lost again")
        return "runs_lost"
    if later := _superseding_run(run):
        _close_lost(run, now=now, source=RunStatus.QUEUED, why=f"superseded by run #{later}")
        return "runs_lost"
    _resend(run, now=now, source=RunStatus.QUEUED, what=MESSAGE_RESENT)
    return "messages_resent"


def _resend(run: JobRun, *, now: datetime, source: str, what: str) -> None:
    run.message_id = generate_unique_id()
    run_move(
        run.pk,
        source={source},
        target=RunStatus.QUEUED,
        message_id=run.message_id,
        status_reason=f"{what}; re-sent",
        repairs=_repaired(run, now=now, what=what),
    )
    job_runs_send([run])
    logger.warning("Rescued run #%s of %s: %s; re-sent.", run.pk, run.job, what)


def _close_lost(run: JobRun, *, now: datetime, source: str, why: str) -> None:
    run_move(
        run.pk,
        source={source},
        target=RunStatus.LOST,
        status_reason=f"lost: {why}",
        finished_at=now,
        repairs=_repaired(run, now=now, what=f"closed as lost: {why}"),
    )
    logger.warning("Closed run #%s of %s as lost: %s.", run.pk, run.job, why)
    transaction.on_commit(lambda: _after_close(run.pk))


def _after_close(run_id: int) -> None:
    run = JobRun.objects.get(pk=run_id)
    if run.parent_id is not None:
        fan_out_finish(run.parent_id)
    elif run.status == RunStatus.FAILED:
        alert_run_failed(run)


def _repaired(run: JobRun, *, now: datetime, what: str) -> list[dict]:
    return [*run.repairs, {"at": now.isoformat(), "what": what}]


def _sent_at(run: JobRun) -> datetime:
    resent = [repair["at"] for repair in run.repairs if repair["what"] == MESSAGE_RESENT]
    return datetime.fromisoformat(resent[-1]) if resent else run.created_at


def _superseding_run(run: JobRun) -> int | None:
    """A later top-level run of the same job that did its work: every job sweeps everything
    due as of its time, so a later full sweep, or a later run with the same parameters, did
    this run's too. Shards cover a slice and are never superseded."""
    if run.parent_id is not None:
        return None
    return (
        JobRun.objects.filter(
            Q(params={}) | Q(params=run.params),
            job=run.job,
            parent__isnull=True,
            dry_run=run.dry_run,
            status__in=DID_THE_WORK,
            created_at__gt=run.created_at,
        )
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )


def _return_dead_workers_slots(*, now: datetime, dry_run: bool) -> Counter:
    counts: Counter = Counter()
    cutoff = now - timedelta(seconds=conf.WORKER_LOST_AFTER)
    for heartbeat in WorkerHeartbeat.objects.filter(last_seen_at__lt=cutoff).exclude(slots={}):
        held = sum(heartbeat.slots.values())
        if dry_run:
            counts["slots_returned"] += held
            continue
        # Emptied first, and only if unchanged: two rescues never return the same slots.
        if not WorkerHeartbeat.objects.filter(pk=heartbeat.pk, slots=heartbeat.slots).update(
            slots={}
        ):
            continue
        for queue, count in sorted(heartbeat.slots.items()):
            concurrency_slots_return(queue, count)
        counts["slots_returned"] += held
        logger.warning(
            "Returned the concurrency slots %s of %s, gone since %s.",
            heartbeat.slots,
            heartbeat.name,
            heartbeat.last_seen_at.isoformat(),
        )
    return counts


def _parents_with_every_shard_ended() -> list[int]:
    waiting = JobRun.objects.filter(status=RunStatus.WAITING)
    return [
        parent.pk
        for parent in waiting.only("pk")
        if not parent.shards.exclude(status__in=FINISHED_STATUSES).exists()
    ]


def _runs_with_a_message() -> set[int] | None:
    """The runs whose message waits in a queue, is delayed (a retry's backoff) or is held
    by a worker; None when the broker cannot be looked into (not Redis)."""
    broker = dramatiq.get_broker()
    if not isinstance(broker, RedisBroker):
        return None
    queues = {spec.queue for spec in all_jobs()} | set(broker.get_declared_queues())
    run_ids: set[int] = set()
    for queue in queues:
        for name in (queue, dq_name(queue)):
            key = f"{broker.namespace}:{name}.msgs"
            for _message_key, payload in broker.client.hscan_iter(key, count=1_000):
                message = Message.decode(payload)
                if message.actor_name.startswith("run_") and message.args:
                    run_ids.add(message.args[0])
    return run_ids


def rescue_runs(context: JobContext) -> dict:
    counts = runs_rescue(exclude_run_id=context.run.pk, dry_run=context.dry_run)
    if counts and not context.dry_run:
        context.log.warning("Repairs: %s", counts)
    return {"dry_run": True, **counts} if context.dry_run else counts


def register_rescue_job() -> None:
    register(
        JobSpec(
            name="rescue_runs",
            body=rescue_runs,
            cron="* * * * *",
            queue="engine",
            max_retries=0,
            description="Re-send runs whose worker died or whose message was lost; close "
            "those a later run already did as lost; end fanned-out runs whose shards ended.",
        )
    )
