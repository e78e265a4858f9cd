"""Queue statistics and dead-letter handling on the Redis broker."""

from __future__ import annotations

import dataclasses
import logging

import dramatiq
from dramatiq import Message
from dramatiq.common import dq_name, q_name, xq_name

from jobs.actors import declare_all_actors
from jobs.exceptions import UnknownQueue
from jobs.models import JobRun, RunStatus, Trigger
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


def queue_dead_messages(*, queue: str, limit: int = 100) -> list[Message]:
    broker = _broker()
    xq_key = _key(broker, xq_name(_known_queue(queue)))
    ids = broker.client.zrange(xq_key, 0, limit - 1)
    payloads = broker.client.hmget(f"{xq_key}.msgs", ids) if ids else []
    return [Message.decode(payload) for payload in payloads if payload]


def queue_requeue_dead(*, queue: str, requested_by: str, limit: int = 1_000) -> dict:
    """Send dead-lettered messages again. A failed run's message becomes a new run linked to
    the failed one (the failed run keeps its record); any other message is re-sent as it was."""
    broker = _broker()
    xq_key = _key(broker, xq_name(_known_queue(queue)))
    counts = {"requeued": 0, "runs_retried": 0}
    for message_id in broker.client.zrange(xq_key, 0, limit - 1):
        payload = broker.client.hget(f"{xq_key}.msgs", message_id)
        removed = broker.client.zrem(xq_key, message_id)
        broker.client.hdel(f"{xq_key}.msgs", message_id)
        if not payload or not removed:
            continue
        message = Message.decode(payload)
        run = _run_of(message)
        if run is not None and run.status == RunStatus.FAILED:
            job_run_request(
                job=run.job,
                trigger=Trigger.RETRY,
                retry_of=run,
                requested_by=requested_by,
                reason=f"requeued from the {queue} dead-letter queue",
            )
            counts["runs_retried"] += 1
        else:
            for spent in ("retries", "traceback", "eta"):
                message.options.pop(spent, None)
            broker.enqueue(message.copy(queue_name=q_name(message.queue_name)))
        counts["requeued"] += 1
    logger.warning(
        "Requeued %s dead-lettered message(s) of %s for %s", counts["requeued"], queue, requested_by
    )
    return counts


def _run_of(message: Message) -> JobRun | None:
    if not message.actor_name.startswith("run_") or len(message.args) != 1:
        return None
    return JobRun.objects.filter(pk=message.args[0]).first()


def queue_clear(*, queue: str, requested_by: str) -> None:
    """Drop every message of a queue. The runs they carried stay queued in the database, and
    each job's next sweep does their work."""
    _broker().flush(_known_queue(queue))
    logger.warning("Queue %s cleared by %s", queue, requested_by)
