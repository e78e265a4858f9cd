"""The per-job lock that keeps one job from overlapping itself across the whole fleet.

On PostgreSQL it is a session-level advisory lock: it survives the body's own commits and
vanishes with the connection, so a killed worker never leaves it held. Its key is the lock's
name hashed by the database, so that a worker reads a run and takes its lock in one statement
(`run_locked`). Other databases (the SQLite development default) get a process-local lock,
enough for one development worker.
"""

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from jobs.models import FINISHED_STATUSES, JobRun

_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


def run_lock_name(run) -> str:
    """A job's top-level runs of one lock scope exclude each other (a targeted run of a job
    whose rows are claimed safely has its parameters' scope, every other run the whole job's);
    a shard only excludes duplicates of itself."""
    if run.parent_id is not None:
        return f"{run.job}/run-{run.pk}"
    return f"{run.job}?{run.lock_scope}" if run.lock_scope else run.job


# The advisory lock's key of a lock name (an SQL text expression).
LOCK_KEY_SQL = "hashtextextended('steward-job:' || {name}, 0)"
# `run_lock_name` of a jobs_jobrun row, in SQL.
RUN_LOCK_NAME_SQL = (
    "CASE WHEN parent_id IS NOT NULL THEN job || '/run-' || id "
    "WHEN lock_scope <> '' THEN job || '?' || lock_scope ELSE job END"
)
# What the lock and a duplicate check need of a run; the whole row is read when it is claimed.
# In the model's order, which is the order `Model.from_db` expects a partial row in.
RUN_HEAD_FIELDS = [
    field.attname
    for field in JobRun._meta.concrete_fields
    if field.attname in {"id", "job", "parent_id", "status", "lock_scope"}
]


@dataclasses.dataclass
class JobLock:
    """A job's lock as a caller tried to take it: true when this caller holds it."""

    acquired: bool
    # The advisory lock's key, on PostgreSQL.
    key: int | None = None
    released: bool = False

    def __bool__(self) -> bool:
        return self.acquired

    def key_to_release(self) -> int | None:
        """The key a caller's next statement may release the lock with (`pg_advisory_unlock`),
        saving the unlock's own round trip; None when the lock is not held, is not an advisory
        lock, or is needed until a transaction in progress commits. The caller says
        `released = True` once that statement has run."""
        if not self.acquired or self.released or self.key is None:
            return None
        return None if connection.in_atomic_block else self.key


@contextmanager
def job_lock(job_name: str) -> Iterator[JobLock]:
    """Yield the job's lock, held by this caller unless another run holds it."""
    if connection.vendor != "postgresql":
        with _local_lock(job_name) as lock:
            yield lock
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT key, pg_try_advisory_lock(key) "
            f"FROM (SELECT {LOCK_KEY_SQL.format(name='%s')} AS key) AS lock",
            [job_name],
        )
        key, acquired = cursor.fetchone()
    with _released(JobLock(acquired=acquired, key=key)) as lock:
        yield lock


@contextmanager
def run_locked(run_id: int) -> Iterator[tuple[JobRun, JobLock]]:
    """Yield the run, with just `RUN_HEAD_FIELDS` loaded, and its lock (`run_lock_name`), read
    and taken in one statement on PostgreSQL. Raises JobRun.DoesNotExist."""
    if connection.vendor != "postgresql":
        run = JobRun.objects.only(*RUN_HEAD_FIELDS).get(pk=run_id)
        with _local_lock(run_lock_name(run)) as lock:
            yield run, lock
        return
    columns = ", ".join(RUN_HEAD_FIELDS)
    key = LOCK_KEY_SQL.format(name=RUN_LOCK_NAME_SQL)
    finished = sorted(FINISHED_STATUSES)
    with connection.cursor() as cursor:
        # A finished run's duplicate message takes no lock: a queued run of the job could
        # otherwise find it held and be skipped.
        cursor.execute(
            f"SELECT {columns}, key, CASE WHEN status IN ({', '.join(['%s'] * len(finished))}) "
            "THEN false ELSE pg_try_advisory_lock(key) END FROM ("
            f"SELECT {columns}, {key} AS key FROM {JobRun._meta.db_table} WHERE id = %s"
            ") AS run",
            [*finished, run_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise JobRun.DoesNotExist(f"JobRun {run_id} does not exist.")
    run = JobRun.from_db(connection.alias, RUN_HEAD_FIELDS, row[:-2])
    with _released(JobLock(acquired=row[-1], key=row[-2])) as lock:
        yield run, lock


@contextmanager
def _released(lock: JobLock) -> Iterator[JobLock]:
    """Give a held advisory lock back at the end, unless a statement of the caller's did."""
    try:
        yield lock
    finally:
        if lock.acquired and not lock.released:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [lock.key])


@contextmanager
def _local_lock(name: str) -> Iterator[JobLock]:
    with _local_locks_guard:
        local_lock = _local_locks.setdefault(name, threading.Lock())
    acquired = local_lock.acquire(blocking=False)
    try:
        yield JobLock(acquired=acquired)
    finally:
        if acquired:
            local_lock.release()
