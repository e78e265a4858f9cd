"""Worker heartbeats: every worker process records, every few seconds, that it is alive and
which runs it is executing; a graceful stop removes its row, a killed worker's row goes stale.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta

import redis
from django.db import DatabaseError, connections
from django.utils import timezone

from jobs.conf import conf
from jobs.control_state import slots_held
from jobs.models import AttemptStatus, JobRunAttempt, WorkerHeartbeat

logger = logging.getLogger("steward.workers")

WORKER_LOST = "worker lost: its job lock vanished while the run was running"

# The attempt each thread of this process is executing: thread id -> (run id, attempt number).
_attempts: dict[int, tuple[int, int]] = {}
_attempts_guard = threading.Lock()


def worker_name() -> str:
    """How attempts and heartbeats name this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def attempt_started(*, run_id: int, number: int) -> None:
    with _attempts_guard:
        _attempts[threading.get_ident()] = (run_id, number)


def attempt_ended() -> None:
    with _attempts_guard:
        _attempts.pop(threading.get_ident(), None)


def _attempts_now() -> list[dict]:
    with _attempts_guard:
        return [{"run": run, "attempt": number} for run, number in sorted(_attempts.values())]


def attempts_abandon(run, *, now: datetime) -> None:
    """Close the run's attempts still marked running: their worker is gone."""
    JobRunAttempt.objects.filter(run=run, status=AttemptStatus.RUNNING).update(
        status=AttemptStatus.ABANDONED, finished_at=now, error=WORKER_LOST
    )


def worker_is_gone(heartbeat: WorkerHeartbeat | None, *, now: datetime) -> bool:
    return heartbeat is None or heartbeat.last_seen_at < now - timedelta(
        seconds=conf.WORKER_LOST_AFTER
    )


class Heartbeat:
    """Beats in a daemon thread until stopped; stopping removes this process's row. A worker's
    beat also publishes the queue controls again, should Redis have lost them."""

    def __init__(
        self, *, queues: list[str], threads: int, role: str = WorkerHeartbeat.Role.WORKER
    ) -> None:
        self.queues = sorted(queues)
        self.threads = threads
        self.role = role
        self.draining = False
        self.name = worker_name()
        self.started_at = timezone.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steward-heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            WorkerHeartbeat.objects.filter(name=self.name).delete()
        except DatabaseError as exc:
            logger.warning("Could not remove the heartbeat of %s: %s", self.name, exc)

    def drain(self) -> None:
        """Say at once that this process is stopping: it takes no new message."""
        self.draining = True
        try:
            self.beat()
        except DatabaseError as exc:
            logger.warning("Could not record that %s is draining: %s", self.name, exc)

    def beat(self) -> None:
        now = timezone.now()
        WorkerHeartbeat.objects.update_or_create(
            name=self.name,
            defaults={
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "role": self.role,
                "draining": self.draining,
                "queues": self.queues,
                "threads": self.threads,
                "started_at": self.started_at,
                "last_seen_at": now,
                "attempts": _attempts_now(),
                "slots": slots_held(),
            },
        )
        if self.role == WorkerHeartbeat.Role.WORKER:
            _publish_controls()

    def _run(self) -> None:
        try:
            while not self._stop.wait(conf.WORKER_HEARTBEAT_SECONDS):
                try:
                    self.beat()
                except DatabaseError as exc:
                    # The database may be restarting; the next beat reconnects.
                    logger.warning("Heartbeat of %s failed: %s", self.name, exc)
                    connections.close_all()
        finally:
            connections.close_all()


def _publish_controls() -> None:
    # Imported late: the controls import the actors, which import this module.
    from jobs.controls import controls_publish

    try:
        controls_publish()
    except redis.RedisError as exc:
        logger.warning("Could not publish the queue controls: %s", exc)
