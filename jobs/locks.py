"""The per-job lock that keeps one job from overlapping itself across the whole fleet.

On PostgreSQL it is a session-level advisory lock: it survives the body's own commits and
vanishes with the connection, so a killed worker never leaves it held. Other databases (the
SQLite development default) get a process-local lock, enough for one development worker.
"""

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


def run_lock_name(run) -> str:
    """A job's top-level runs of one lock scope exclude each other (a targeted run of a job
    whose rows are claimed safely has its parameters' scope, every other run the whole job's);
    a shard only excludes duplicates of itself."""
    if run.parent_id is not None:
        return f"{run.job}/run-{run.pk}"
    return f"{run.job}?{run.lock_scope}" if run.lock_scope else run.job


def job_lock_key(job_name: str) -> int:
    digest = hashlib.blake2b(f"steward-job:{job_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def job_lock(job_name: str) -> Iterator[bool]:
    """Yield True when this caller holds the job's lock, False when another run holds it."""
    if connection.vendor == "postgresql":
        key = job_lock_key(job_name)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            acquired = cursor.fetchone()[0]
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return

    with _local_locks_guard:
        lock = _local_locks.setdefault(job_name, threading.Lock())
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()
