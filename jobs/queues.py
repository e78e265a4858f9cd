"""Queue statistics, clearing a queue, and dead-letter handling on the Redis broker."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime

import dramatiq
from django.db import transaction
from django.utils import timezone
from dramatiq import Message
from dramatiq.common import dq_name, q_name, xq_name

from jobs.actors import declare_all_actors
from jobs.audit import control_action_record
from jobs.exceptions import InvalidInput, UnknownDeadLetter, UnknownQueue
from jobs.fanout import fan_out_finish
from jobs.lanes import lane_queue
from jobs.models import RUN_TRANSITIONS, ControlAction, JobRun, RunStatus, Trigger
from jobs.services import job_run_request

logger = logging.getLogger("steward.queues")


@dataclasses.dataclass(frozen=True)
class QueueStats:
    name: str
    waiting: int
    delayed: int
    in_flight: int
    dead_lettered: int


def _broker():
    broker = dramatiq.get_broker()
    declare_all_actors()
    return broker


def _key(broker, queue: str) -> str:
    return f"{broker.namespace}:{queue}"


def queue_names() -> list[str]:
    return sorted(q_name(name) for name in _broker().get_declared_queues())


def _known_queue(name: str) -> str:
    known = queue_names()
    if name not in known:
        raise UnknownQueue(name, known)
    return name


def queue_stats() -> list[QueueStats]:
    """Waiting, delayed (including retries waiting out their backoff), in flight (fetched by a
    worker, not yet acknowledged) and dead-lettered messages of every queue."""
    broker = _broker()
    pipe = broker.client.pipeline(transaction=False)
    names = queue_names()
    for name in names:
        key = _key(broker, name)
        pipe.llen(key)
        pipe.hlen(f"{key}.msgs")
        pipe.hlen(f"{_key(broker, dq_name(name))}.msgs")
        pipe.zcard(_key(broker, xq_name(name)))
    values = pipe.execute()
    stats = []
    for index, name in enumerate(names):
        waiting, stored, delayed, dead = values[index * 4 : index * 4 + 4]
        stats.append(QueueStats(name, waiting, delayed, max(stored - waiting, 0), dead))
    return stats


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
    return _key(broker, xq_name(_known_queue(queue)))


def queue_dead_letters(*, queue: str, limit: int = 100) -> tuple[int, list[DeadLetter]]:
    """How many messages the queue dead-lettered, and the oldest `limit` with their runs."""
    broker = _broker()
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
        {run_id for _, _, message in messages if (run_id := _run_id_of(message)) is not None}
    )
    letters = [
        DeadLetter(
            message_id=message.message_id,
            redis_message_id=key,
            actor=message.actor_name,
            dead_since=datetime.fromtimestamp(score / 1000, tz=UTC),
            retries=message.options.get("retries", 0),
            error=_last_line(message.options.get("traceback", "")),
            run=runs.get(_run_id_of(message)),
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
    broker = _broker()
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
    broker = _broker()
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
                    "runs": sorted(filter(None, map(_run_id_of, taken))),
                },
                after={"deleted": len(taken)},
            )
    return {"deleted": len(taken)}


def _run_id_of(message: Message) -> int | None:
    if not message.actor_name.startswith("run_") or len(message.args) != 1:
        return None
    return message.args[0]


def _run_of(message: Message) -> JobRun | None:
    run_id = _run_id_of(message)
    return None if run_id is None else JobRun.objects.filter(pk=run_id).first()


# Take every waiting message of a queue (the list and the payloads of its entries) at once;
# messages a worker holds and dead letters stay.
_TAKE_WAITING = """
local ids = redis.call('lrange', KEYS[1], 0, -1)
local payloads = {}
for start = 1, #ids, 1000 do
  local chunk = {unpack(ids, start, math.min(start + 999, #ids))}
  local values = redis.call('hmget', KEYS[2], unpack(chunk))
  for _, value in ipairs(values) do
    if value then table.insert(payloads, value) end
  end
  redis.call('hdel', KEYS[2], unpack(chunk))
end
redis.call('del', KEYS[1])
return payloads
"""


def queue_clear(*, queue: str, requested_by: str, confirm: str, reason: str = "") -> dict:
    """Drop every message waiting in a queue (and its delayed ones) and cancel the runs they
    carried, so that no rescue sends them again. A job queue's urgent lane goes with it; a
    lane named on its own is cleared alone. Runs executing keep going; dead letters stay.
    `confirm` must repeat the queue's name."""
    _known_queue(queue)
    if confirm != queue:
        raise InvalidInput({"confirm": [f"Type the queue's name, {queue}, to confirm."]})
    broker = _broker()
    lanes = [name for name in (queue, lane_queue(queue, urgent=True)) if name in queue_names()]
    messages = []
    for lane in lanes:
        for name in (lane, dq_name(lane)):
            key = _key(broker, name)
            payloads = broker.client.eval(_TAKE_WAITING, 2, key, f"{key}.msgs")
            messages += [Message.decode(payload) for payload in payloads]
    run_ids = sorted(filter(None, map(_run_id_of, messages)))
    why = f"the {queue} queue was cleared by {requested_by or 'an operator'}" + (
        f": {reason}" if reason else ""
    )
    with transaction.atomic():
        queued = JobRun.objects.filter(pk__in=run_ids, status=RunStatus.QUEUED)
        parents = set(queued.exclude(parent=None).values_list("parent_id", flat=True))
        now = timezone.now()
        cancelled = RUN_TRANSITIONS.update(
            queued,
            source={RunStatus.QUEUED},
            target=RunStatus.CANCELLED,
            status_reason=why,
            finished_at=now,
            cancel_requested_at=now,
            cancel_requested_by=requested_by,
            cancel_reason=reason or why,
        )
        counts = {"messages": len(messages), "runs_cancelled": cancelled}
        control_action_record(
            action=ControlAction.Action.QUEUE_CLEARED,
            target_type=ControlAction.Target.QUEUE,
            target=queue,
            actor=requested_by,
            reason=reason,
            before={"lanes": lanes, "waiting": len(messages), "runs": run_ids[:100]},
            after=counts,
        )
    for parent_id in sorted(parents):
        fan_out_finish(parent_id)
    return counts
