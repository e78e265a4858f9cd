"""Dead letters: the messages a queue gave up on, listed with their runs, requeued (a failed
run's message becomes a new retry run) or deleted, one or all, each change audited."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from django.db import transaction
from dramatiq import Message
from dramatiq.common import q_name, xq_name

from jobs.audit import control_action_record
from jobs.exceptions import UnknownDeadLetter
from jobs.models import ControlAction, JobRun, RunStatus, Trigger
from jobs.queues import broker_with_actors, known_queue_name, redis_key, run_id_of
from jobs.services import job_run_request


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """A dead-lettered message and the run it carried, if it carried one."""

    message_id: str
    redis_message_id: str
    actor: str
    dead_since: datetime
    retries: int
    error: str
    run: JobRun | None


def _dead_key(broker, queue: str) -> str:
    return redis_key(broker, xq_name(known_queue_name(queue)))


def queue_dead_letters(*, queue: str, limit: int = 100) -> tuple[int, list[DeadLetter]]:
    """How many messages the queue dead-lettered, and the oldest `limit` with their runs."""
    broker = broker_with_actors()
    xq_key = _dead_key(broker, queue)
    total = broker.client.zcard(xq_key)
    entries = broker.client.zrange(xq_key, 0, limit - 1, withscores=True)
    payloads = broker.client.hmget(f"{xq_key}.msgs", [key for key, _ in entries]) if entries else []
    messages = [
        (key.decode(), score, Message.decode(payload))
        for (key, score), payload in zip(entries, payloads, strict=True)
        if payload
    ]
    runs = JobRun.objects.in_bulk(
        {run_id for _, _, message in messages if (run_id := run_id_of(message)) is not None}
    )
    letters = [
        DeadLetter(
            message_id=message.message_id,
            redis_message_id=key,
            actor=message.actor_name,
            dead_since=datetime.fromtimestamp(score / 1000, tz=UTC),
            retries=message.options.get("retries", 0),
            error=_last_line(message.options.get("traceback", "")),
            run=runs.get(run_id_of(message)),
        )
        for key, score, message in messages
    ]
    return total, letters


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:500] if lines else ""


def _taken_dead(broker, queue: str, message_ids: list[str] | None, limit: int) -> list[Message]:
    """Remove dead letters from the queue's dead-letter set and return them: those with the
    given Dramatiq message ids (UnknownDeadLetter for one not there), or the oldest `limit`."""
    xq_key = _dead_key(broker, queue)
    keys = broker.client.zrange(xq_key, 0, -1 if message_ids else limit - 1)
    payloads = broker.client.hmget(f"{xq_key}.msgs", keys) if keys else []
    found = {}
    for key, payload in zip(keys, payloads, strict=True):
        if payload:
            message = Message.decode(payload)
            if message_ids is None or message.message_id in message_ids:
                found[key] = message
    if message_ids:
        missing = set(message_ids) - {message.message_id for message in found.values()}
        if missing:
            raise UnknownDeadLetter(queue, sorted(missing)[0])
    taken = []
    for key, message in found.items():
        # Whoever removes it takes it: a concurrent requeue or delete gets nothing.
        if broker.client.zrem(xq_key, key):
            broker.client.hdel(f"{xq_key}.msgs", key)
            taken.append(message)
    return taken


def queue_requeue_dead(
    *,
    queue: str,
    requested_by: str,
    message_ids: list[str] | None = None,
    reason: str = "",
    limit: int = 1_000,
) -> dict:
    """Send dead-lettered messages again: the given ones, or the oldest `limit`. A failed
    run's message becomes a new run linked to the failed one (the failed run keeps its
    record); any other message is re-sent as it was."""
    broker = broker_with_actors()
    counts = {"requeued": 0, "runs_retried": 0}
    resent = []
    with transaction.atomic():
        taken = _taken_dead(broker, queue, message_ids, limit)
        for message in taken:
            run = _run_of(message)
            if run is not None and run.status == RunStatus.FAILED:
                job_run_request(
                    job=run.job,
                    trigger=Trigger.RETRY,
                    retry_of=run,
                    requested_by=requested_by,
                    reason=reason or f"requeued from the {queue} dead-letter queue",
                )
                counts["runs_retried"] += 1
            else:
                for spent in ("retries", "traceback", "eta"):
                    message.options.pop(spent, None)
                resent.append(message.copy(queue_name=q_name(message.queue_name)))
            counts["requeued"] += 1
        if taken:
            control_action_record(
                action=ControlAction.Action.DEAD_REQUEUED,
                target_type=ControlAction.Target.QUEUE,
                target=queue,
                actor=requested_by,
                reason=reason,
                before={"message_ids": [message.message_id for message in taken]},
                after=counts,
            )
    for message in resent:
        broker.enqueue(message)
    return counts


def queue_delete_dead(
    *,
    queue: str,
    requested_by: str,
    message_ids: list[str] | None = None,
    reason: str = "",
    limit: int = 10_000,
) -> dict:
    """Drop dead-lettered messages for good: the given ones, or the oldest `limit`. Their runs
    keep their records."""
    broker = broker_with_actors()
    with transaction.atomic():
        taken = _taken_dead(broker, queue, message_ids, limit)
        if taken:
            control_action_record(
                action=ControlAction.Action.DEAD_DELETED,
                target_type=ControlAction.Target.QUEUE,
                target=queue,
                actor=requested_by,
                reason=reason,
                before={
                    "message_ids": [message.message_id for message in taken],
                    "runs": sorted(filter(None, map(run_id_of, taken))),
                },
                after={"deleted": len(taken)},
            )
    return {"deleted": len(taken)}


def _run_of(message: Message) -> JobRun | None:
    run_id = run_id_of(message)
    return None if run_id is None else JobRun.objects.filter(pk=run_id).first()
