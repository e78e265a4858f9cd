"""Queue statistics and clearing a queue, on the Redis broker; its dead letters are in
`jobs.dead_letters`."""

from __future__ import annotations

import dataclasses
import logging

import dramatiq
from django.db import transaction
from django.utils import timezone
from dramatiq import Message
from dramatiq.common import dq_name, q_name, xq_name

from jobs.actors import declare_all_actors
from jobs.audit import control_action_record
from jobs.exceptions import InvalidInput, UnknownQueue
from jobs.fanout import fan_out_finish
from jobs.lanes import lane_queue
from jobs.models import RUN_TRANSITIONS, ControlAction, JobRun, RunStatus

logger = logging.getLogger("steward.queues")


@dataclasses.dataclass(frozen=True)
class QueueStats:
    name: str
    waiting: int
    delayed: int
    in_flight: int
    dead_lettered: int


def broker_with_actors():
    """The broker, with every job's actors (and so every queue) declared on it."""
    broker = dramatiq.get_broker()
    declare_all_actors()
    return broker


def redis_key(broker, queue: str) -> str:
    return f"{broker.namespace}:{queue}"


def queue_names() -> list[str]:
    return sorted(q_name(name) for name in broker_with_actors().get_declared_queues())


def known_queue_name(name: str) -> str:
    known = queue_names()
    if name not in known:
        raise UnknownQueue(name, known)
    return name


def queue_stats() -> list[QueueStats]:
    """Waiting, delayed (including retries waiting out their backoff), in flight (fetched by a
    worker, not yet acknowledged) and dead-lettered messages of every queue."""
    broker = broker_with_actors()
    pipe = broker.client.pipeline(transaction=False)
    names = queue_names()
    for name in names:
        key = redis_key(broker, name)
        pipe.llen(key)
        pipe.hlen(f"{key}.msgs")
        pipe.hlen(f"{redis_key(broker, dq_name(name))}.msgs")
        pipe.zcard(redis_key(broker, xq_name(name)))
    values = pipe.execute()
    stats = []
    for index, name in enumerate(names):
        waiting, stored, delayed, dead = values[index * 4 : index * 4 + 4]
        stats.append(QueueStats(name, waiting, delayed, max(stored - waiting, 0), dead))
    return stats


def run_id_of(message: Message) -> int | None:
    if not message.actor_name.startswith("run_") or len(message.args) != 1:
        return None
    return message.args[0]


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
    known_queue_name(queue)
    if confirm != queue:
        raise InvalidInput({"confirm": [f"Type the queue's name, {queue}, to confirm."]})
    broker = broker_with_actors()
    lanes = [name for name in (queue, lane_queue(queue, urgent=True)) if name in queue_names()]
    messages = []
    for lane in lanes:
        for name in (lane, dq_name(lane)):
            key = redis_key(broker, name)
            payloads = broker.client.eval(_TAKE_WAITING, 2, key, f"{key}.msgs")
            messages += [Message.decode(payload) for payload in payloads]
    run_ids = sorted(filter(None, map(run_id_of, messages)))
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
