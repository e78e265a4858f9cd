"""The workers and schedulers of one scenario, and the faults injected into them."""

from __future__ import annotations

import os
import re
import signal
from collections import Counter
from pathlib import Path

from jobs.models import FINISHED_STATUSES, JobRun
from jobs.services import job_run_request
from tests.faults.harness import (
    PrivateRedis,
    StewardProcess,
    database_url,
    free_port,
    terminate_backends,
    wait_for,
)
from tests.faults.profile import Profile

# In the workers' logs: Dramatiq logs every delivery (at DEBUG) and every retry, and a tick
# logs a slot it finds already recorded.
RECEIVED = re.compile(r"Received message run_\w+\(\d+\) with id '([0-9a-f-]+)'")
RETRYING = re.compile(r"Retrying message '([0-9a-f-]+)'")
REPEATED_TICK = "ignoring a repeated tick"


class Fleet:
    def __init__(self, *, redis: PrivateRedis, log_dir: Path, profile: Profile) -> None:
        self.redis = redis
        self.log_dir = log_dir
        self.profile = profile
        self.sent_log = log_dir / "sent.log"
        self.processes: dict[str, StewardProcess] = {}
        self.faults = 0

    def _env(self, name: str, extra: dict[str, str]) -> dict[str, str]:
        channel = "tests.faults.channels.FileChannel"
        env = dict(os.environ)
        env.update(
            DATABASE_URL=database_url(f"steward-fault-{name}"),
            REDIS_URL=self.redis.url,
            PYTHONUNBUFFERED="1",
            LOG_LEVEL="DEBUG",
            DRAMATIQ_HEARTBEAT_TIMEOUT_MS=str(self.profile.heartbeat_timeout_ms),
            DRAMATIQ_MAINTENANCE_CHANCE=str(self.profile.maintenance_chance),
            STEWARD_DEFAULT_MIN_BACKOFF_MS=str(self.profile.min_backoff_ms),
            STEWARD_BATCH_SIZE=str(self.profile.batch_size),
            STEWARD_ALERT_BACKEND="jobs.alerts.LogOnlyAlertBackend",
            STEWARD_PUSH_BACKEND=channel,
            STEWARD_SMS_BACKEND=channel,
            STEWARD_EMAIL_CHANNEL_BACKEND=channel,
            FAULTS_SENT_LOG=str(self.sent_log),
            # Each worker its own metrics port and files, clear of any other worker here.
            dramatiq_prom_port=str(free_port()),
            dramatiq_prom_db=str(self.log_dir / f"prometheus-{name}"),
        )
        env.update(extra)
        return env

    def _start(self, processes: list[StewardProcess]) -> list[StewardProcess]:
        for process in processes:
            self.processes[process.name] = process
            process.launch()
        for process in processes:
            process.wait_ready()
        return processes

    def workers(self, *names: str, threads: int = 2, **env: str) -> list[StewardProcess]:
        args = ["rundramatiq", "--processes", "1", "--threads", str(threads)]
        args += ["--worker-shutdown-timeout", "20000"]
        return self._start(
            [
                StewardProcess(name, args, env=self._env(name, env), log_dir=self.log_dir)
                for name in names
            ]
        )

    def worker(self, name: str, **env: str) -> StewardProcess:
        return self.workers(name, **env)[0]

    def schedulers(self, *names: str, **env: str) -> list[StewardProcess]:
        return self._start(
            [
                StewardProcess(
                    name, ["runscheduler"], env=self._env(name, env), log_dir=self.log_dir
                )
                for name in names
            ]
        )

    def restart(self, process: StewardProcess) -> StewardProcess:
        process.stop()
        process.launch()
        process.wait_ready()
        return process

    # --- Faults ---------------------------------------------------------------------------

    def kill(self, process: StewardProcess) -> None:
        """SIGKILL the whole process group: no shutdown hook runs, nothing is acknowledged."""
        process.signal_group(signal.SIGKILL)
        process.process.wait(timeout=10)
        self.faults += 1

    def pause(self, process: StewardProcess) -> None:
        process.signal_group(signal.SIGSTOP)
        self.faults += 1

    def resume(self, process: StewardProcess) -> None:
        process.signal_group(signal.SIGCONT)

    def terminate_backends(self, *processes: StewardProcess) -> int:
        terminated = terminate_backends([process.application_name for process in processes])
        self.faults += 1
        return terminated

    def restart_redis(self) -> None:
        self.redis.restart()
        self.faults += 1

    # --- Observations ---------------------------------------------------------------------

    def worker_logs(self) -> str:
        return "\n".join(
            process.log_text()
            for process in self.processes.values()
            if process.args[0] == "rundramatiq"
        )

    def duplicate_deliveries(self) -> dict[str, int]:
        """Deliveries of a run message beyond its first and its retries (a redelivery after a
        lost worker, a stalled worker's message requeued, the same message sent twice), and
        ticks of a slot that was already recorded (a second scheduler, a restarted one)."""
        logs = self.worker_logs()
        received = Counter(RECEIVED.findall(logs))
        retried = Counter(RETRYING.findall(logs))
        return {
            "run_messages": sum(
                max(0, count - 1 - retried[message_id]) for message_id, count in received.items()
            ),
            "ticks": logs.count(REPEATED_TICK),
        }

    def duplicates_seen(self) -> int:
        return sum(self.duplicate_deliveries().values())

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.stop()


def run_and_wait(job: str, *, reason: str, timeout: float = 300.0) -> JobRun:
    """Send a run of `job` to the fleet's workers and wait until it has finished."""
    run = job_run_request(job=job, trigger="cli", requested_by="fault suite", reason=reason)
    return wait_finished(run.pk, timeout=timeout)


def wait_finished(run_id: int, *, timeout: float = 300.0) -> JobRun:
    def finished() -> JobRun | None:
        run = JobRun.objects.get(pk=run_id)
        return run if run.status in FINISHED_STATUSES else None

    return wait_for(finished, timeout=timeout, message=f"run #{run_id} to finish", interval=0.2)
