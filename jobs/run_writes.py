"""The runner's own statements, each one round trip: claim a run for an attempt, save an
attempt's outcome, save its log (`jobs.locks.run_locked` reads a run and takes its lock).

Every run executes these, however little its body does, so they are written as SQL rather than
built by the ORM at every call: on a no-op run, building the ORM's queries cost the worker more
than the database spent on them. On PostgreSQL the claim (the run moved to `running` and its
attempt inserted) and the outcome (the run moved on and its attempt closed) are one statement
each, so both halves commit together; other databases get the ORM's statements, one per row.
"""

from __future__ import annotations

import functools
from datetime import datetime

from django.db import connection

from jobs.models import RUN_TRANSITIONS, AttemptStatus, JobRun, JobRunAttempt, RunStatus, run_move

_RUN_FIELDS = JobRun._meta.concrete_fields
_RUN_ATTNAMES = [field.attname for field in _RUN_FIELDS]
_RUN_TABLE = JobRun._meta.db_table
_ATTEMPT_TABLE = JobRunAttempt._meta.db_table
# The attempt's columns a claim writes from its parameters; `run_id` and `number` come from the
# claimed run.
_ATTEMPT_FIELDS = [
    field
    for field in JobRunAttempt._meta.concrete_fields
    if field.attname not in ("id", "run_id", "number")
]


def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def _run_columns(alias: str) -> str:
    return ", ".join(f"{alias}.{_quoted(field.column)}" for field in _RUN_FIELDS)


def _set_clause(model, fields: dict) -> tuple[str, list]:
    """`"column" = %s, ...` and its parameters, each value prepared as its field saves it."""
    columns, params = [], []
    for name, value in fields.items():
        field = model._meta.get_field(name)
        columns.append(f"{_quoted(field.column)} = %s")
        params.append(field.get_db_prep_save(value, connection))
    return ", ".join(columns), params


def _run_from_row(row) -> JobRun:
    values = []
    for field, value in zip(_RUN_FIELDS, row, strict=True):
        # Django reads JSON columns as text and decodes them in the field.
        if value is not None and hasattr(field, "from_db_value"):
            value = field.from_db_value(value, None, connection)
        values.append(value)
    return JobRun.from_db(connection.alias, _RUN_ATTNAMES, values)


@functools.cache
def _claim_sql() -> str:
    attempt_columns = ", ".join(_quoted(field.column) for field in _ATTEMPT_FIELDS)
    attempt_values = ", ".join(["%s"] * len(_ATTEMPT_FIELDS))
    return f"""
        WITH claimed AS (
            UPDATE {_RUN_TABLE} AS run
            SET status = %s, started_at = COALESCE(run.started_at, %s),
                attempt_count = run.attempt_count + 1
            WHERE run.id = %s AND run.status = %s AND run.cancel_requested_at IS NULL
              AND (run.parent_id IS NOT NULL OR NOT EXISTS (
                  SELECT 1 FROM {_RUN_TABLE} AS other
                  WHERE other.job = run.job AND other.lock_scope = run.lock_scope
                    AND other.status IN (%s, %s) AND other.parent_id IS NULL
                    AND other.id <> run.id))
            RETURNING {_run_columns("run")}
        ), attempt AS (
            INSERT INTO {_ATTEMPT_TABLE} (run_id, number, {attempt_columns})
            SELECT claimed.id, claimed.attempt_count, {attempt_values} FROM claimed
            RETURNING id
        )
        SELECT attempt.id, {_run_columns("claimed")} FROM claimed, attempt
    """


def run_claim(
    run_id: int, *, now: datetime, worker: str, message_id: str, queued_at: datetime | None
) -> tuple[JobRun, JobRunAttempt] | None:
    """Claim a queued run for a new attempt in one statement, under its job's lock: the run
    moved to `running` and its attempt inserted, both returned. None (nothing written) unless
    the run is queued, not being cancelled and, for a top-level run, its job has no other run
    of its lock scope running or waiting for shards: those cases are the runner's to sort out.
    PostgreSQL only (None elsewhere)."""
    if connection.vendor != "postgresql":
        return None
    RUN_TRANSITIONS.check(source={RunStatus.QUEUED}, target=RunStatus.RUNNING)
    attempt = JobRunAttempt(
        status=AttemptStatus.RUNNING,
        started_at=now,
        worker=worker,
        message_id=message_id,
        queued_at=queued_at,
        wait_ms=None if queued_at is None else max(elapsed_ms(queued_at, now), 0),
    )
    params = [
        RunStatus.RUNNING,
        now,
        run_id,
        RunStatus.QUEUED,
        RunStatus.RUNNING,
        RunStatus.WAITING,
        *(
            field.get_db_prep_save(getattr(attempt, field.attname), connection)
            for field in _ATTEMPT_FIELDS
        ),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(), params)
        row = cursor.fetchone()
    if row is None:
        return None
    run = _run_from_row(row[1:])
    attempt.pk, attempt.run, attempt.number = row[0], run, run.attempt_count
    attempt._state.adding, attempt._state.db = False, connection.alias
    return run, attempt


def run_finish(
    run: JobRun,
    attempt: JobRunAttempt,
    *,
    status: str,
    run_fields: dict,
    attempt_status: str,
    attempt_fields: dict,
    unlock_key: int | None = None,
) -> bool:
    """Move the running run to `status` with `run_fields` and close its attempt; whether the run
    was still running (the attempt is closed either way). One statement on PostgreSQL, which
    also releases the job's advisory lock `unlock_key` if given: a run that takes the lock
    before this statement commits finds this run still running, and its conditional updates
    of this run wait for this statement and then leave the run alone."""
    if connection.vendor != "postgresql":
        moved = run_move(run.pk, source={RunStatus.RUNNING}, target=status, **run_fields)
        JobRunAttempt.objects.filter(pk=attempt.pk).update(status=attempt_status, **attempt_fields)
        return moved
    RUN_TRANSITIONS.check(source={RunStatus.RUNNING}, target=status)
    run_set, run_params = _set_clause(JobRun, {"status": status, **run_fields})
    attempt_set, attempt_params = _set_clause(
        JobRunAttempt, {"status": attempt_status, **attempt_fields}
    )
    unlock, unlock_params = (
        ("", [])
        if unlock_key is None
        else (
            ", pg_advisory_unlock(%s)",
            [unlock_key],
        )
    )
    sql = f"""
        WITH moved AS (
            UPDATE {_RUN_TABLE} SET {run_set} WHERE id = %s AND status = %s RETURNING id
        ), closed AS (
            UPDATE {_ATTEMPT_TABLE} SET {attempt_set} WHERE id = %s
        )
        SELECT (SELECT count(*) FROM moved){unlock}
    """
    params = [
        *run_params,
        run.pk,
        RunStatus.RUNNING,
        *attempt_params,
        attempt.pk,
        *unlock_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0] == 1


def attempt_log_save(run_id: int, number: int, lines: list[dict]) -> None:
    log_set, params = _set_clause(JobRunAttempt, {"log": lines})
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_ATTEMPT_TABLE} SET {log_set} WHERE run_id = %s AND number = %s",
            [*params, run_id, number],
        )


def elapsed_ms(started: datetime, finished: datetime) -> int:
    return int((finished - started).total_seconds() * 1000)
