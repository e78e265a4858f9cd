"""One Dramatiq actor per registered job; each runs a queued JobRun through the runner."""

import threading

import dramatiq
from dramatiq.middleware import CurrentMessage

from jobs.registry import all_jobs, get_job

_actors: dict[str, dramatiq.Actor] = {}
_actors_guard = threading.Lock()


def run_job(run_id: int) -> None:
    from jobs.services import job_run_execute

    message = CurrentMessage.get_current_message()
    retries_done = message.options.get("retries", 0)
    actor = dramatiq.get_broker().get_actor(message.actor_name)
    max_retries = message.options.get("max_retries", actor.options["max_retries"])
    job_run_execute(
        run_id=run_id,
        final_attempt=retries_done >= max_retries,
        message_id=message.message_id,
    )


def actor_for(job_name: str) -> dramatiq.Actor:
    """The job's actor, declared on the current broker the first time it is asked for."""
    spec = get_job(job_name)
    with _actors_guard:
        actor = _actors.get(job_name)
        if actor is None or actor.broker is not dramatiq.get_broker():
            actor = dramatiq.actor(
                run_job,
                actor_name=spec.actor_name,
                queue_name=spec.queue,
                max_retries=spec.max_retries,
                min_backoff=spec.min_backoff_ms,
                time_limit=spec.time_limit_ms,
            )
            _actors[job_name] = actor
        return actor


def declare_all_actors() -> list[dramatiq.Actor]:
    return [actor_for(spec.name) for spec in all_jobs()]
