"""The Dramatiq actors of every registered job.

`run_<job>` executes a queued JobRun through the runner. `tick_schedules` is periodiq's one
actor: every minute it records the runs of the schedules due and sends them.
"""

import threading

import dramatiq
import pendulum
from django.utils import timezone
from dramatiq.middleware import CurrentMessage
from periodiq import cron

from jobs.exceptions import PERMANENT_ERRORS
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
    job_run_execute(
        run_id=run_id,
        final_attempt=retries_done >= max_retries,
        message_id=message.message_id,
    )


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


def actor_for(job_name: str) -> dramatiq.Actor:
    """The job's run actor, declared on the current broker the first time it is asked for."""
    spec = get_job(job_name)
    return _declare(
        spec.actor_name,
        lambda: dramatiq.actor(
            run_job,
            actor_name=spec.actor_name,
            queue_name=spec.queue,
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
    return [actor_for(spec.name) for spec in all_jobs()] + [tick_actor()]
