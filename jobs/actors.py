"""The Dramatiq actors of every registered job.

`run_<job>` executes a queued JobRun through the runner. `tick_<job>` carries the job's cron
schedule for periodiq; a tick only records the run of its slot and sends `run_<job>`.
"""

import threading

import dramatiq
import pendulum
from django.utils import timezone
from dramatiq.middleware import CurrentMessage
from periodiq import cron

from jobs.cron import validate_cron
from jobs.exceptions import PERMANENT_ERRORS
from jobs.registry import all_jobs, get_job
from jobs.runner import job_run_execute
from jobs.scheduling import schedule_tick

SCHEDULE_QUEUE = "schedule"

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


def _tick_function(job_name: str):
    def tick() -> None:
        scheduled_at = CurrentMessage.get_current_message().options.get("scheduled_at")
        schedule_tick(
            job=job_name,
            scheduled_at=pendulum.parse(scheduled_at) if scheduled_at else timezone.now(),
        )

    tick.__name__ = tick.__qualname__ = f"tick_{job_name}"
    return tick


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


def tick_actor_for(job_name: str) -> dramatiq.Actor:
    """The job's periodic tick actor, carrying its validated cron spec."""
    spec = get_job(job_name)
    return _declare(
        f"tick_{spec.name}",
        lambda: dramatiq.actor(
            _tick_function(spec.name),
            actor_name=f"tick_{spec.name}",
            queue_name=SCHEDULE_QUEUE,
            periodic=cron(validate_cron(spec.cron)),
            max_retries=3,
            min_backoff=1_000,
        ),
    )


def declare_all_actors() -> list[dramatiq.Actor]:
    return [actor_for(spec.name) for spec in all_jobs()] + [
        tick_actor_for(spec.name) for spec in all_jobs()
    ]
