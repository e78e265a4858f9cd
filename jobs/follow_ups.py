"""Follow-up runs: the jobs a run's job spec names, requested once the run has ended `succeeded`.

A follow-up is requested after its parent's outcome is saved, through `job_run_request` like
any other run (its parameters validated by the follow-up job), and at most once per (parent,
job): the constraint `jobrun_one_follow_up_per_job` makes the end of a run seen twice harmless.
Nothing here ever changes the parent's outcome: a follow-up that cannot be requested is logged
as an error and the parent stays succeeded.

The follow-up graph is checked when a process starts (`follow_ups_validate`) and by Django's
system checks (`jobs.checks`): every follow-up names a registered job, and no chain of
follow-ups leads back to a job it started from.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction

from jobs.exceptions import UnknownJob
from jobs.models import JobRun, RunStatus, Trigger
from jobs.params import params_text
from jobs.registry import all_jobs, get_job
from jobs.runlog import run_fields
from jobs.services import job_run_request

logger = logging.getLogger("steward.jobs")


def follow_ups_request(*, run: JobRun) -> list[JobRun]:
    """Request the follow-ups of `run` if it is a top-level run that ended `succeeded` and is
    not a dry run. Returns the follow-up runs this call recorded. Never raises: a follow-up
    whose parameters or request fail is logged at ERROR and left out."""
    if run.parent_id is not None or run.dry_run or run.status != RunStatus.SUCCEEDED:
        return []
    try:
        spec = get_job(run.job)
    except UnknownJob:
        return []
    fields = {"extra": run_fields(run)}
    requested = []
    for follow_up in spec.follow_ups:
        try:
            follow_up_run = _follow_up_request(run, follow_up)
        except Exception:
            logger.exception(
                "Could not request the follow-up %s of %s run #%s; the run stays %s.",
                follow_up.job,
                run.job,
                run.pk,
                run.status,
                **fields,
            )
            continue
        if follow_up_run is None:
            continue
        requested.append(follow_up_run)
        targets = f" ({params_text(follow_up_run.params)})" if follow_up_run.params else ""
        logger.info(
            "Requested follow-up run #%s of %s%s.",
            follow_up_run.pk,
            follow_up_run.job,
            targets,
            **fields,
        )
    return requested


def _follow_up_request(run: JobRun, follow_up) -> JobRun | None:
    """The follow-up run requested; None when the run changed nothing to follow up or its
    follow-up of this job was requested already (its end seen twice)."""
    if run.follow_ups.filter(job=follow_up.job).exists():
        _log_already_requested(run, follow_up.job)
        return None
    params = follow_up.params(run)
    if params is None:
        return None
    try:
        # A savepoint: inside a caller's transaction the duplicate must not abort it.
        with transaction.atomic():
            return job_run_request(
                job=follow_up.job,
                trigger=Trigger.FOLLOW_UP,
                requested_by=f"{run.job} run #{run.pk}",
                reason=f"follow-up of {run.job} run #{run.pk}",
                params=params,
                follow_up_of=run,
            )
    except IntegrityError:
        # Another process saw the same end and requested it first.
        if not run.follow_ups.filter(job=follow_up.job).exists():
            raise
        _log_already_requested(run, follow_up.job)
        return None


def _log_already_requested(run: JobRun, job: str) -> None:
    logger.info(
        "The follow-up %s of %s run #%s was requested already.",
        job,
        run.job,
        run.pk,
        extra=run_fields(run),
    )


def follow_up_errors() -> list[str]:
    """What is wrong with the registered jobs' follow-ups: a job nobody registered, a loop."""
    graph = {spec.name: [follow_up.job for follow_up in spec.follow_ups] for spec in all_jobs()}
    errors = [
        f"job {name}: follow-up {follow_up!r} is not a registered job"
        for name, follow_ups in graph.items()
        for follow_up in follow_ups
        if follow_up not in graph
    ]
    loops: list[list[str]] = []
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            loops.append([*path[path.index(name) :], name])
            return
        if name in done or name not in graph:
            return
        for follow_up in graph[name]:
            visit(follow_up, [*path, name])
        done.add(name)

    for name in graph:
        visit(name, [])
    errors += [f"follow-ups loop: {' -> '.join(loop)}" for loop in loops]
    return errors


def follow_ups_validate() -> None:
    """Refuse to start with a follow-up naming no job or a loop of follow-ups (which would
    request runs forever). Called once every app has registered its jobs."""
    if errors := follow_up_errors():
        raise ImproperlyConfigured("invalid job follow-ups:\n  " + "\n  ".join(errors))
