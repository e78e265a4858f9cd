"""Liveness and readiness: what `/healthz` and `/readyz` answer. Ready means the database and
Redis answer, a scheduler beat lately, every queue has a live worker that is not stopping, and
the fleet is not draining."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import redis
from django.db import DatabaseError, connection
from django.utils import timezone

from jobs.conf import conf
from jobs.control_state import control_client
from jobs.models import FleetState, WorkerHeartbeat
from jobs.queues import queue_names


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def readiness() -> list[Check]:
    database = _database()
    checks = [database, _redis()]
    if not database.ok:
        skipped = "not checked: the database does not answer"
        return [*checks, *(Check(name, False, skipped) for name in ("scheduler", "workers"))]
    cutoff = timezone.now() - timedelta(seconds=conf.WORKER_LOST_AFTER)
    live = WorkerHeartbeat.objects.filter(last_seen_at__gte=cutoff)
    return [*checks, _scheduler(live), _workers(live), _not_draining()]


def _database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return Check("database", False, _first_line(exc))
    return Check("database", True, "answers")


def _redis() -> Check:
    try:
        control_client().ping()
    except redis.RedisError as exc:
        return Check("redis", False, _first_line(exc))
    return Check("redis", True, "answers")


def _scheduler(live) -> Check:
    beat = live.filter(role=WorkerHeartbeat.Role.SCHEDULER).order_by("-last_seen_at").first()
    if beat is None:
        return Check(
            "scheduler", False, f"no scheduler beat in the last {conf.WORKER_LOST_AFTER} s"
        )
    age = (timezone.now() - beat.last_seen_at).total_seconds()
    return Check("scheduler", True, f"{beat.name} beat {age:.0f} s ago")


def _workers(live) -> Check:
    workers = list(live.filter(role=WorkerHeartbeat.Role.WORKER, draining=False))
    served = {queue for worker in workers for queue in worker.queues}
    unserved = [queue for queue in queue_names() if queue not in served]
    if unserved:
        return Check("workers", False, f"no live worker for: {', '.join(unserved)}")
    return Check("workers", True, f"{len(workers)} live worker process(es) serve every queue")


def _not_draining() -> Check:
    drain = FleetState.objects.filter(draining=True).first()
    if drain is not None:
        since = drain.draining_since.isoformat() if drain.draining_since else "a while"
        return Check("draining", False, f"the fleet has been draining since {since}")
    return Check("draining", True, "accepting work")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
