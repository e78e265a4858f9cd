"""Real worker subprocesses for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

READY_LINE = "is ready for action"


def test_database_url() -> str:
    db = connection.settings_dict
    credentials = db["USER"] or "postgres"
    if db["PASSWORD"]:
        credentials += f":{db['PASSWORD']}"
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=test_database_url(),
        REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def manage_py(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`manage.py ARGS` in its own process against the test database and Redis, as a person at
    a terminal runs it: its output, its exit status."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class WorkerProcess:
    """A worker started by `manage.py rundramatiq` (or `runworker`, whose shutdown timeout is
    STEWARD_SHUTDOWN_TIMEOUT); `start` launches and waits, or `launch` several and then
    `wait_ready` for each, so that they start at once."""

    def __init__(
        self,
        *,
        log_path: Path,
        threads: int = 2,
        env: dict[str, str] | None = None,
        command: str = "rundramatiq",
    ):
        self.log_path = log_path
        self.threads = threads
        self.extra_env = env or {}
        self.command = command
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> WorkerProcess:
        self._log = open(self.log_path, "w")  # noqa: SIM115 - kept open for the process' life
        args = ["--processes", "1", "--threads", str(self.threads)]
        if self.command == "rundramatiq":
            args += ["--worker-shutdown-timeout", "20000"]
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", self.command, *args],
            cwd=settings.BASE_DIR,
            env=subprocess_env(**self.extra_env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_LINE in self.log_text():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker did not start:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        """SIGKILL hits the whole process group, as an OOM kill or power loss would; other
        signals go to Dramatiq's main process, which forwards them once to its workers (a
        worker process that gets a second SIGTERM kills itself)."""
        if signum == signal.SIGKILL:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()
