"""The real pieces a fault scenario drives: a private Redis, worker and scheduler processes,
and handles on the test database's backends and row locks."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import redis
from django.conf import settings
from django.db import connection

from tests.workers import READY_LINE, test_database_url

APP_PREFIX = "steward-fault-"
SCHEDULER_READY_LINE = "Registered periodic actors"


def wait_for(predicate: Callable[[], object], *, timeout: float, message: str, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of the suite's own on a free port, without persistence, so a restart
    loses every queued message the way a production Redis without persistence does."""

    def __init__(self, *, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=open(self.workdir / "redis.log", "a"),  # noqa: SIM115 - lives with the server
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._answers, timeout=10, message=f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def restart(self) -> None:
        """Crash and start again: everything that was only in memory is gone."""
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state, ppid, pgrp, ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


class StewardProcess:
    """A `manage.py` worker or scheduler in its own process group, with its own log and its
    own PostgreSQL application name (so its backends can be found and terminated)."""

    def __init__(self, name: str, args: list[str], *, env: dict[str, str], log_dir: Path):
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self.ready_line = READY_LINE if args[0] == "rundramatiq" else SCHEDULER_READY_LINE

    @property
    def application_name(self) -> str:
        return f"{APP_PREFIX}{self.name}"

    def launch(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", *self.args],
            cwd=settings.BASE_DIR,
            env=self.env,
            stdout=open(self.log_path, "a"),  # noqa: SIM115 - lives with the process
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_text()[-3000:]}")
            return self.ready_line in self.log_text()

        wait_for(ready, timeout=timeout, message=f"{self.name} to start", interval=0.1)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pids(self) -> list[int]:
        return _group_pids(self.process.pid) if self.alive else []

    def signal_group(self, signum: int) -> None:
        """To every process of the group, as a kill by the OOM killer, a stopped container or
        a debugger would; SIGTERM goes to the main process, which forwards it once."""
        if signum == signal.SIGTERM:
            self.process.send_signal(signum)
        else:
            os.killpg(self.process.pid, signum)

    def stop(self, timeout: float = 30.0) -> None:
        if not self.alive:
            return
        self.signal_group(signal.SIGCONT)
        self.signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.process.wait(timeout=10)


def database_url(application_name: str) -> str:
    return f"{test_database_url()}?application_name={application_name}"


def backends(application_name: str) -> list[dict]:
    """The test database's server processes serving one of our processes."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, state, wait_event_type, backend_xid IS NOT NULL, query "
            "FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
            [application_name],
        )
        return [
            {"pid": pid, "state": state, "waiting": wait, "wrote": wrote, "query": query}
            for pid, state, wait, wrote, query in cursor.fetchall()
        ]


def terminate_backends(application_names: list[str]) -> int:
    """pg_terminate_backend on our processes' backends in the test database, and no other."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = ANY(%s) "
            "AND pid <> pg_backend_pid()",
            [application_names],
        )
        return cursor.fetchone()[0]


def blocked_by(application_name: str, pid: int) -> bool:
    """Whether a backend serving one of our processes waits for a lock the backend `pid`
    holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s AND %s = ANY(pg_blocking_pids(pid)))",
            [application_name, pid],
        )
        return cursor.fetchone()[0]


@contextmanager
def rows_locked(sql: str, params: list) -> Iterator[int]:
    """Hold `SELECT ... FOR UPDATE` locks from a connection of our own until the block ends;
    the block is given that connection's backend pid."""
    with psycopg.connect(test_database_url(), autocommit=False) as blocker:
        blocker.execute(sql, params)
        try:
            yield blocker.info.backend_pid
        finally:
            blocker.rollback()
