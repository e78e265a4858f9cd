"""Requesting runs: the one way every surface, the scheduler and the runner record a run.

`job_run_request` writes the JobRun row and, once the surrounding transaction commits, sends
its message to the workers. Executing a run is `jobs.runner`'s business.
"""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import nullcontext
from datetime import UTC, datetime

import dramatiq
from django.db import IntegrityError, transaction
from django.utils import timezone
from dramatiq.message import generate_unique_id

from jobs.conf import conf
from jobs.exceptions import IdempotencyConflict, RunNotRetryable
from jobs.models import FINISHED_STATUSES, JobRun, JobState, RunStatus, Schedule, Trigger
from jobs.params import lock_scope_of, params_validate
from jobs.registry import JobSpec, all_jobs, get_job

logger = logging.getLogger("steward.jobs")


def job_run_request(
    *,
    job: str,
    trigger: str,
    requested_by: str = "",
    reason: str = "",
    as_of: datetime | None = None,
    dry_run: bool = False,
    params: dict | None = None,
    urgent: bool = False,
    retry_of: JobRun | None = None,
    follow_up_of: JobRun | None = None,
    idempotency_key: str | None = None,
    enqueue: bool = True,
) -> JobRun:
    """Record a run and, once the transaction commits, send it to the workers.

    - `params`: the job's parameters, validated against what it declares (InvalidInput
      naming the field otherwise, and nothing recorded).
    - `urgent`: the run goes to its queue's urgent lane, which workers take from first; a
      targeted run (parameters of a job whose rows are claimed safely) always does.

    - `retry_of`: a failed run this one retries (its job and dry-run flag are taken over);
      RunNotRetryable when it is not failed. While a retry of it is queued or running, that
      retry is returned (with `replayed` set) instead of a second one.
    - `follow_up_of`: the run whose outcome asks for this one (`jobs.follow_ups`); a second
      follow-up of one job for the same run raises IntegrityError.
    - `idempotency_key`, scoped to `requested_by`: the first request makes the run, a repeat
      of the same request gets that run back (with `replayed` set), the same key on another
      request raises IdempotencyConflict.
    - `enqueue=False`: the caller executes the run itself, in this process.

    Raises UnknownJob for a name nobody registered.
    """
    # A plain request is one INSERT, committed on its own; a retry locks the failed run and
    # an idempotent request needs a savepoint, so those take a transaction.
    with transaction.atomic() if retry_of is not None or idempotency_key else nullcontext():
        if retry_of is not None:
            retry_of = _retryable(retry_of)
            in_flight = retry_of.retries.exclude(status__in=FINISHED_STATUSES).first()
            if in_flight is not None:
                in_flight.replayed = True
                return in_flight
            job, dry_run, params = retry_of.job, retry_of.dry_run, retry_of.params
            urgent = urgent or retry_of.urgent
            trigger, reason = Trigger.RETRY, reason or f"retry of run #{retry_of.pk}"
        spec = get_job(job)
        params = params_validate(spec, params)
        run = new_run(
            spec,
            trigger=trigger,
            requested_by=requested_by,
            reason=reason,
            as_of=as_of or timezone.now(),
            dry_run=dry_run,
            params=params,
            urgent=urgent,
            retry_of=retry_of,
            follow_up_of=follow_up_of,
        )
        if enqueue:
            run.message_id = generate_unique_id()
        if idempotency_key is not None:
            run.idempotency_key = idempotency_key
            run.request_fingerprint = _request_fingerprint(
                job=spec.name,
                reason=reason,
                as_of=as_of,
                dry_run=dry_run,
                params=params,
                urgent=run.urgent,
            )
            earlier = _save_once(run)
            if earlier is not None:
                return earlier
        else:
            run.save()
        if enqueue:
            job_runs_send([run])
        return run


def new_run(
    spec: JobSpec,
    *,
    trigger: str,
    as_of: datetime,
    params: dict,
    requested_by: str = "",
    reason: str = "",
    dry_run: bool = False,
    urgent: bool = False,
    **fields,
) -> JobRun:
    """An unsaved run of `spec` with validated `params`, as every request records one."""
    lock_scope = lock_scope_of(spec, params)
    return JobRun(
        job=spec.name,
        trigger=Trigger(trigger),
        requested_by=requested_by,
        reason=reason,
        as_of=as_of,
        dry_run=dry_run,
        params=params,
        lock_scope=lock_scope,
        # A targeted run is a person waiting on a few rows: it does not queue behind sweeps.
        urgent=urgent or bool(lock_scope),
        code_version=conf.CODE_VERSION,
        **fields,
    )


def scheduled_runs_record(runs: list[JobRun]) -> list[JobRun]:
    """Save the scheduler's runs of its slots, each sent once the transaction commits unless it
    is recorded skipped; a `(schedule, slot)` already recorded (a second scheduler, a repeated
    tick) is left out. Returns the runs this call recorded.

    One INSERT for all of them; only when another scheduler got to one of the slots first does
    it fall back to one savepoint per run.
    """
    for run in runs:
        if run.status != RunStatus.SKIPPED:
            run.message_id = generate_unique_id()
    recorded = set(
        JobRun.objects.filter(
            schedule_id__any={run.schedule_id for run in runs},
            slot__any={run.slot for run in runs},
        ).values_list("schedule_id", "slot")
    )
    runs = [run for run in runs if (run.schedule_id, run.slot) not in recorded]
    try:
        with transaction.atomic():
            JobRun.objects.bulk_create(runs)
    except IntegrityError:
        runs = [run for run in runs if _save_unless_recorded(run)]
    job_runs_send([run for run in runs if run.status != RunStatus.SKIPPED])
    return runs


def _save_unless_recorded(run: JobRun) -> bool:
    run.pk = None
    try:
        with transaction.atomic():
            run.save()
    except IntegrityError:
        return False
    return True


@transaction.atomic
def job_shards_request(*, parent: JobRun, shards: list[dict]) -> list[JobRun]:
    """Record a fanned-out run's shard runs in one statement and send them."""
    count = len(shards)
    runs = JobRun.objects.bulk_create(
        [
            JobRun(
                job=parent.job,
                trigger=parent.trigger,
                requested_by=parent.requested_by,
                reason=f"shard {shard['index'] + 1}/{count} of run #{parent.pk}",
                as_of=parent.as_of,
                dry_run=parent.dry_run,
                parent=parent,
                shard=shard,
                urgent=parent.urgent,
                code_version=parent.code_version,
                message_id=generate_unique_id(),
            )
            for shard in shards
        ]
    )
    job_runs_send(runs)
    return runs


def job_runs_send(runs: list[JobRun]) -> None:
    """Once the transaction commits, send each saved run's message under its recorded id to
    its lane, built as the run actor's own `message()` builds it, with its schedule's retry
    settings."""
    retries = _schedule_retry_options({run.schedule_id for run in runs} - {None})
    messages = []
    for run in runs:
        queue_name, actor_name = get_job(run.job).lane(urgent=run.urgent)
        messages.append(
            dramatiq.Message(
                queue_name=queue_name,
                actor_name=actor_name,
                args=(run.pk,),
                kwargs={},
                options=retries.get(run.schedule_id, {}),
                message_id=run.message_id,
            )
        )

    def send() -> None:
        broker = dramatiq.get_broker()
        for queue_name in {message.queue_name for message in messages}:
            broker.declare_queue(queue_name)
        if len(messages) > 1 and hasattr(broker, "enqueue_many"):
            broker.enqueue_many(messages)
            return
        for message in messages:
            broker.enqueue(message)

    transaction.on_commit(send)


def _schedule_retry_options(schedule_ids: set[int]) -> dict[int, dict]:
    """The message options of the schedules that override their job's retry settings."""
    if not schedule_ids:
        return {}
    overriding = Schedule.objects.filter(pk__any=schedule_ids).exclude(
        max_retries__isnull=True, min_backoff_ms__isnull=True
    )
    options = {}
    for pk, max_retries, min_backoff in overriding.values_list(
        "pk", "max_retries", "min_backoff_ms"
    ):
        options[pk] = {
            name: value
            for name, value in (("max_retries", max_retries), ("min_backoff", min_backoff))
            if value is not None
        }
    return options


def _retryable(run: JobRun) -> JobRun:
    # The row lock makes concurrent retries of one run take turns, so the second one sees
    # the first one's retry.
    run = JobRun.objects.select_for_update().get(pk=run.pk)
    if run.status != RunStatus.FAILED:
        raise RunNotRetryable(f"run #{run.pk} is {run.status}; only failed runs are retried")
    return run


def _save_once(run: JobRun) -> JobRun | None:
    """Save a run carrying an idempotency key; the earlier run when the key was used before."""
    try:
        with transaction.atomic():
            run.save()
    except IntegrityError:
        earlier = JobRun.objects.get(
            requested_by=run.requested_by, idempotency_key=run.idempotency_key
        )
        if earlier.request_fingerprint != run.request_fingerprint:
            raise IdempotencyConflict(
                f"Idempotency-Key {run.idempotency_key!r} was used for a different request "
                f"(run #{earlier.pk})"
            ) from None
        earlier.replayed = True
        return earlier
    return None


def _request_fingerprint(**request) -> str:
    """Equal for equal requests, whatever the order of fields or the offset of a time."""
    canonical = json.dumps(
        request,
        sort_keys=True,
        default=lambda moment: moment.astimezone(UTC).isoformat(),
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def job_states_ensure() -> None:
    """Give every registered job a state row, so the admin lists them all."""
    JobState.objects.bulk_create(
        [JobState(job=spec.name) for spec in all_jobs()], ignore_conflicts=True
    )
