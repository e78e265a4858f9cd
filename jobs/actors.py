"""The Dramatiq actors of every registered job.

`run_<job>` executes a queued JobRun through the runner. `tick_schedules` is periodiq's one
actor: every minute it records the runs of the schedules due and sends them.
"""

import threading
from datetime import UTC, datetime

import dramatiq
import pendulum
from django.utils import timezone
from dramatiq.middleware import CurrentMessage
from periodiq import cron

from jobs.exceptions import PERMANENT_ERRORS
from jobs.lanes import URGENT_PRIORITY, message_again
from jobs.middleware import ENQUEUED_AT
from jobs.models import RunStatus
from jobs.registry import all_jobs, get_job
from jobs.runner import job_run_execute
from jobs.scheduling import schedules_tick

SCHEDULE_QUEUE = "schedule"
TICK_ACTOR = "tick_schedules"

_actors: dict[str, dramatiq.Actor] = {}
_actors_guard = threading.Lock()


def run_job(run_id: int) -> None:
    message = CurrentMessage.get_current_message()
    retries_done = message.options.get("retries", 0)
    actor = dramatiq.get_broker().get_actor(message.actor_name)
    max_retries = message.options.get("max_retries", actor.options["max_retries"])
    enqueued_at = message.options.get(ENQUEUED_AT)
    run = job_run_execute(
        run_id=run_id,
        final_attempt=retries_done >= max_retries,
        message_id=message.message_id,
        queued_at=datetime.fromtimestamp(enqueued_at / 1000, tz=UTC) if enqueued_at else None,
    )
    if run.status == RunStatus.QUEUED:
        # Handed back by a stopping worker: the same message goes back to its queue for
        # another worker, its retries untouched, since nothing failed.
        dramatiq.get_broker().enqueue(message_again(message))


def tick_schedules() -> None:
    scheduled_at = CurrentMessage.get_current_message().options.get("scheduled_at")
    schedules_tick(now=pendulum.parse(scheduled_at) if scheduled_at else timezone.now())


def _declare(key: str, make) -> dramatiq.Actor:
    with _actors_guard:
        broker = dramatiq.get_broker()
        actor = _actors.get(key)
        if actor is None or actor.broker is not broker:
            # A broker set back after a swap still knows the actor; declaring it again raises.
            actor = _actors[key] = broker.actors.get(key) or make()
        return actor


def actor_for(job_name: str, *, urgent: bool = False) -> dramatiq.Actor:
    """The job's run actor of a lane, declared on the current broker the first time it is
    asked for. The urgent lane's actor has a higher priority, so a worker also starts its
    messages before the normal lane's that it already holds."""
    spec = get_job(job_name)
    queue_name, actor_name = spec.lane(urgent=urgent)
    return _declare(
        actor_name,
        lambda: dramatiq.actor(
            run_job,
            actor_name=actor_name,
            queue_name=queue_name,
            priority=URGENT_PRIORITY if urgent else 0,
            max_retries=spec.max_retries,
            min_backoff=spec.min_backoff_ms,
            time_limit=spec.time_limit_ms,
            # Retries cannot fix these: the message fails at once, and so does its run.
            throws=PERMANENT_ERRORS,
        ),
    )


def tick_actor() -> dramatiq.Actor:
    """The scheduler's minute tick: the schedules are rows, read afresh at every tick."""
    return _declare(
        TICK_ACTOR,
        lambda: dramatiq.actor(
            tick_schedules,
            actor_name=TICK_ACTOR,
            queue_name=SCHEDULE_QUEUE,
            periodic=cron("* * * * *"),
            max_retries=3,
            min_backoff=1_000,
        ),
    )


def declare_all_actors() -> list[dramatiq.Actor]:
    return [
        actor_for(spec.name, urgent=urgent) for spec in all_jobs() for urgent in (False, True)
    ] + [tick_actor()]
