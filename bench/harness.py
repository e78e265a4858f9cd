"""Shared machinery of the benchmarks that run real processes.

Databases cloned from a template (so each side of a comparison starts from identical data),
the bench's Redis database, `rundramatiq` and `runscheduler` subprocesses, sampling of CPU and
of what PostgreSQL's backends wait on, machine information, percentiles, tables and the JSON
result files in bench/results/.

The bench owns every PostgreSQL database whose name starts with `steward_bench` and the Redis
database of REDIS_URL: it drops, creates and flushes them without asking.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
LOG_DIR = ROOT / "var" / "bench"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/steward_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
OWNED_PREFIX = "steward_bench"
# Dramatiq's own default (and rundramatiq's, unless DRAMATIQ_NTHREADS is set): passed
# explicitly so an environment variable cannot change what is measured.
DEFAULT_THREADS = 8
WORKER_READY_LINE = "Worker process is ready for action."
SCHEDULER_READY_LINE = "Starting Periodiq"
# The ledger's tables and what they refer to, children first: what a benchmark dataset empties.
LEDGER_TABLES = [
    "ledger_notification",
    "ledger_transfer",
    "ledger_donationcycle",
    "ledger_escrow",
    "ledger_donation",
    "ledger_match",
    "ledger_wallet",
    "ledger_systemaccount",
    "jobs_jobrunattempt",
    "jobs_jobrun",
    "auth_user",
]
POSTGRES_SETTINGS = (
    "max_connections",
    "shared_buffers",
    "synchronous_commit",
    "fsync",
    "max_wal_size",
    "checkpoint_timeout",
    "work_mem",
)


# --- URLs and databases -----------------------------------------------------------------------


def bench_urls() -> tuple[str, str]:
    """The bench's DATABASE_URL and REDIS_URL (the Makefile's defaults when unset), exported so
    Django and every subprocess see the same ones."""
    database_url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
    if not database_url.startswith(("postgres://", "postgresql://")):
        raise SystemExit(f"the benchmarks need PostgreSQL, DATABASE_URL is {database_url}")
    name = database_name(database_url)
    if not name.startswith(OWNED_PREFIX):
        raise SystemExit(
            f"the benchmarks drop and create databases named after DATABASE_URL's; its name "
            f"must start with {OWNED_PREFIX!r}, got {name!r}"
        )
    return database_url, redis_url


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def url_with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin_connect(url: str):
    """An autocommit connection to the server's `postgres` database."""
    import psycopg

    return psycopg.connect(url_with_database(url, "postgres"), autocommit=True)


def _owned(name: str) -> None:
    if not name.startswith(OWNED_PREFIX):
        raise ValueError(f"the bench only touches databases named {OWNED_PREFIX}*, not {name!r}")


def database_create(url: str, name: str, *, template: str | None = None) -> float:
    """(Re)create database `name`, empty or as a file copy of `template`; returns seconds.

    Any session still connected to either database (ours, left over from an earlier run) is
    ended first: PostgreSQL refuses to copy a template somebody is connected to.
    """
    from psycopg import sql

    _owned(name)
    started = time.perf_counter()
    with _admin_connect(url) as conn:
        for db in filter(None, (name, template)):
            _owned(db)
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [db],
            )
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        if template is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        else:
            # FILE_COPY copies the files (one checkpoint) instead of WAL-logging every page: a
            # few seconds for a database of several hundred megabytes.
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
    return time.perf_counter() - started


def database_ensure(url: str) -> bool:
    """Create the database named in `url` if it is missing; True when it was created."""
    from psycopg import sql

    name = database_name(url)
    _owned(name)
    with _admin_connect(url) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


BENCH_USERS_SQL = """
INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name,
                       email, is_staff, is_active, date_joined)
SELECT i, '!bench', false, 'bench-' || lpad(i::text, 7, '0'), '', '',
       'bench-' || i || '@example.com', false, true, %(joined)s
FROM generate_series(1, %(count)s) AS i
"""


def users_insert(cursor, *, count: int, joined) -> None:
    """Users 1..count in one statement, for datasets built with set-based SQL."""
    cursor.execute(BENCH_USERS_SQL, {"count": count, "joined": joined})


def database_drop(url: str, name: str) -> None:
    from psycopg import sql

    _owned(name)
    with _admin_connect(url) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def django_setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()


def django_use_database(name: str, *, migrate: bool = False) -> None:
    """Point this process's Django connection at database `name` (closing the current one)."""
    from django.conf import settings
    from django.db import connection

    connection.close()
    settings.DATABASES["default"]["NAME"] = name
    connection.settings_dict["NAME"] = name
    if migrate:
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)


def django_release_database() -> None:
    from django.db import connection

    connection.close()


def vacuum_analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("CHECKPOINT")


# --- Redis ------------------------------------------------------------------------------------


def redis_flush(url: str) -> None:
    """Empty the bench's Redis database: no message of an earlier run reaches a new worker."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def redis_version(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return client.info("server")["redis_version"]
    finally:
        client.close()


# --- Processes --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of one live process (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of proc(5); the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ManagedProcess:
    """A `manage.py` subprocess in its own session, logging to a file, ready once its log shows
    `ready_line` `ready_count` times; stopped with SIGTERM to its main process. A subclass may
    run another program by setting `program`."""

    program = ("manage.py",)

    def __init__(
        self,
        *,
        argv: Sequence[str],
        log_path: Path,
        database_url: str,
        redis_url: str,
        ready_line: str,
        ready_count: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.ready_line = ready_line
        self.ready_count = ready_count
        self._prometheus_dir = tempfile.mkdtemp(prefix="steward-bench-prom-")
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "PYTHONUNBUFFERED": "1",
            # Dramatiq's Prometheus middleware wipes and serves a machine-wide directory and
            # port by default; other workers on this machine must not share ours.
            "dramatiq_prom_db": self._prometheus_dir,
            "dramatiq_prom_port": str(_free_port()),
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = 120.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - open for the process's life
        self.process = subprocess.Popen(
            [sys.executable, *self.program, *self.argv],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_text().count(self.ready_line) >= self.ready_count:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        tail = self.log_text()[-3000:]
        self.stop()
        command = " ".join([*self.program, *self.argv])
        raise RuntimeError(f"`{command}` did not get ready:\n{tail}")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        """CPU time of the whole live process tree (sample it before stopping)."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        pids = [self.process.pid, *_descendants(self.process.pid)]
        return sum(process_cpu_seconds(pid) for pid in pids)

    def stop(self, timeout: float = 60.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self._prometheus_dir, ignore_errors=True)

    def __enter__(self) -> ManagedProcess:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def worker_process(
    *,
    processes: int,
    threads: int = DEFAULT_THREADS,
    database_url: str,
    redis_url: str,
    log_path: Path,
    env: dict[str, str] | None = None,
) -> ManagedProcess:
    """`manage.py rundramatiq --processes N --threads T`, ready when all N processes are."""
    return ManagedProcess(
        argv=[
            "rundramatiq",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
            "--worker-shutdown-timeout",
            "30000",
        ],
        log_path=log_path,
        database_url=database_url,
        redis_url=redis_url,
        ready_line=WORKER_READY_LINE,
        ready_count=processes,
        env=env,
    )


@dataclass(frozen=True)
class WorkerBench:
    """Where a comparison's measurements run: every one on a fresh copy (`database`) of
    `template`, with the bench's Redis, `threads` per worker process, `env` added to the
    workers' environment and at most `timeout` seconds per run; logs are named after `name`."""

    name: str
    database_url: str
    redis_url: str
    template: str
    database: str
    threads: int
    timeout: float
    env: dict[str, str] = field(default_factory=dict)


def worker_arguments_add(parser) -> None:
    """The options of every comparison between worker process counts."""
    parser.add_argument(
        "--processes", type=int, nargs="+", default=[1, 2], help="worker processes (1 2)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"threads per worker process (Dramatiq's default, {DEFAULT_THREADS})",
    )
    parser.add_argument("--repeat", type=int, default=1, help="measurements per process count")
    parser.add_argument(
        "--fanout-threshold", type=int, default=None, help="STEWARD_FANOUT_THRESHOLD for workers"
    )
    parser.add_argument(
        "--shard-size", type=int, default=None, help="STEWARD_SHARD_SIZE for workers"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="per measurement, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")


def worker_env(args, base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` plus the fan-out settings given on the command line, for the workers and, set
    in this process's environment too, for the settings the bench prints."""
    env = dict(base or {})
    if args.fanout_threshold is not None:
        env["STEWARD_FANOUT_THRESHOLD"] = str(args.fanout_threshold)
    if args.shard_size is not None:
        env["STEWARD_SHARD_SIZE"] = str(args.shard_size)
    os.environ.update(env)
    return env


def worker_run_measure(
    bench: WorkerBench, *, processes: int, label: str, enqueue: Callable[[], object]
) -> tuple[object, float, dict]:
    """One run on `processes` worker processes started on a fresh copy: clone the template, point
    Django at it, empty the bench's Redis, start a worker, `enqueue()` a run and wait for it
    while sampling PostgreSQL, then stop the worker.

    Returns the finished run, its seconds from enqueue to finish and what every comparison
    reports of it: processes, threads, the clone's seconds, CPU used by the worker and by its
    PostgreSQL backends, the samples, the shards and the load average around it."""
    from django.utils import timezone

    clone_seconds = database_create(bench.database_url, bench.database, template=bench.template)
    django_use_database(bench.database)
    redis_flush(bench.redis_url)
    worker = worker_process(
        processes=processes,
        threads=bench.threads,
        database_url=url_with_database(bench.database_url, bench.database),
        redis_url=bench.redis_url,
        log_path=log_path(f"{bench.name}-{label}"),
        env=bench.env,
    )
    worker.start()
    try:
        load_before = load_average()
        cpu_before = worker.cpu_seconds()
        with Sampler(database_url=bench.database_url, database=bench.database) as sampler:
            enqueued_at = timezone.now()
            started = time.perf_counter()
            run = run_wait_finished(enqueue().pk, timeout=bench.timeout)
            wall = time.perf_counter() - started
        worker_cpu = worker.cpu_seconds() - cpu_before
    finally:
        worker.stop()
    seconds = (run.finished_at - enqueued_at).total_seconds()
    sampled = sampler.summary()
    backend_cpu = sampled["postgres_backend_cpu_seconds"]
    return (
        run,
        seconds,
        {
            "label": label,
            "processes": processes,
            "threads": bench.threads,
            "database_clone_seconds": round(clone_seconds, 2),
            "run_id": run.pk,
            "run_status": run.status,
            "seconds": round(seconds, 3),
            "wall_seconds": round(wall, 3),
            **shard_report(run),
            "worker_cpu_seconds": round(worker_cpu, 1),
            "worker_cores_used": round(worker_cpu / seconds, 2) if seconds else None,
            "postgres_cores_used": (
                round(backend_cpu / seconds, 2) if backend_cpu is not None and seconds else None
            ),
            "sampled": sampled,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "worker_log": project_path(worker.log_path),
        },
    )


def scheduler_process(
    *, database_url: str, redis_url: str, log_path: Path, env: dict[str, str] | None = None
) -> ManagedProcess:
    return ManagedProcess(
        argv=["runscheduler"],
        log_path=log_path,
        database_url=database_url,
        redis_url=redis_url,
        ready_line=SCHEDULER_READY_LINE,
        env=env,
    )


# --- Sampling ---------------------------------------------------------------------------------


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def backend_state(state: str | None, wait_type: str | None, wait_event: str | None) -> str:
    """One word for what a PostgreSQL backend was doing when sampled."""
    if state == "active":
        if wait_type in ("Lock", "LWLock"):
            return f"lock:{wait_event}"
        if wait_type == "IO":
            return f"io:{wait_event}"
        if wait_type:
            return f"{wait_type.lower()}:{wait_event}"
        return "active"
    if state and state.startswith("idle in transaction"):
        return "idle in transaction"
    return state or "unknown"


def statement_shape(query: str) -> str:
    """A statement without its literals, e.g. `SELECT ... WHERE "id" IN (...) FOR UPDATE`."""
    shape = re.sub(r"\bIN \([^)]*\)?", "IN (...)", " ".join(query.split()))
    shape = re.sub(r"'[^']*'|\b\d+\b", "?", shape)
    return shape[:160]


class Sampler:
    """Samples, every `interval` seconds until stopped: how many of the machine's cores were
    busy, what every backend connected to `database` was doing (running, waiting on a lock, on
    IO, idle in a transaction while Python works, idle) and, when PostgreSQL runs on this
    machine, how much CPU those backends used (the last reading of each backend process; a
    backend's final fraction of a sample interval is missed)."""

    def __init__(self, *, database_url: str, database: str, interval: float = 0.25) -> None:
        self.database_url = database_url
        self.database = database
        self.interval = interval
        self.samples = 0
        self.states: Counter = Counter()
        self.lock_waits: Counter = Counter()
        self.backend_cpu: dict[int, float] = {}
        self.cores_busy: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def _run(self) -> None:
        with _admin_connect(self.database_url) as conn:
            busy, total = _cpu_ticks()
            while not self._stop.wait(self.interval):
                rows = conn.execute(
                    "SELECT state, wait_event_type, wait_event, left(query, 200), pid "
                    "FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid() "
                    "AND backend_type = 'client backend'",
                    [self.database],
                ).fetchall()
                self.samples += 1
                self.states.update(backend_state(*row[:3]) for row in rows)
                self.lock_waits.update(
                    statement_shape(query)
                    for _state, wait_type, _event, query, _pid in rows
                    if wait_type == "Lock"
                )
                for *_columns, pid in rows:
                    if cpu := process_cpu_seconds(pid):
                        self.backend_cpu[pid] = cpu
                now_busy, now_total = _cpu_ticks()
                if now_total > total:
                    share = (now_busy - busy) / (now_total - total)
                    self.cores_busy.append(share * os.cpu_count())
                busy, total = now_busy, now_total

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def summary(self) -> dict:
        """Mean number of backends in each state, and the machine's mean busy cores."""
        n = max(self.samples, 1)
        states = {state: round(count / n, 2) for state, count in self.states.most_common()}
        return {
            "samples": self.samples,
            "interval_seconds": self.interval,
            "machine_cores_busy_mean": round(sum(self.cores_busy) / len(self.cores_busy), 2)
            if self.cores_busy
            else None,
            "backends_mean": states,
            "postgres_backend_cpu_seconds": round(sum(self.backend_cpu.values()), 1)
            if self.backend_cpu
            else None,
            "postgres_backends_seen": len(self.backend_cpu),
            # The statements backends were waiting in for a row or transaction lock, with
            # the mean number of backends waiting in each.
            "lock_waits_mean_by_statement": {
                query: round(count / n, 2) for query, count in self.lock_waits.most_common(5)
            },
        }


def describe_backends(summary: dict, *, top: int = 4) -> str:
    """`active 1.3, lock:transactionid 2.1, idle in transaction 0.8` (mean backends)."""
    states = summary["backends_mean"]
    shown = [f"{state} {mean:g}" for state, mean in list(states.items())[:top] if state != "idle"]
    return ", ".join(shown) or "-"


# --- Polling ----------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], object], *, timeout: float, interval: float, what: str):
    """Call `predicate` until it returns something truthy; raise TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:g} s")
        time.sleep(interval)


def run_wait_finished(run_id: int, *, timeout: float, interval: float = 0.25):
    """The JobRun once it has finished (its shards too, for a fanned-out run)."""
    from jobs.models import FINISHED_STATUSES, JobRun

    def finished():
        run = JobRun.objects.get(pk=run_id)
        return run if run.status in FINISHED_STATUSES else None

    return wait_for(finished, timeout=timeout, interval=interval, what=f"run #{run_id} to finish")


def shard_report(run) -> dict:
    """How a fanned-out run's shards went: count, statuses, durations, processes used."""
    from jobs.models import JobRunAttempt

    shards = list(run.shards.values_list("status", "duration_ms"))
    workers = Counter(
        JobRunAttempt.objects.filter(run__parent=run).values_list("worker", flat=True)
    )
    durations = [ms / 1000 for _status, ms in shards if ms is not None]
    return {
        "shards": len(shards),
        "shard_statuses": dict(Counter(status for status, _ms in shards)),
        "shard_seconds": percentiles(durations, (50, 100)) if durations else {},
        "shards_per_worker_process": dict(sorted(workers.items())),
    }


# --- Statistics and output --------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile, interpolated linearly between the closest ranks (numpy's default)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def percentiles(values: Sequence[float], ps: Iterable[float] = (50, 95, 99)) -> dict:
    return {("max" if p == 100 else f"p{p:g}"): percentile(values, p) for p in ps}


def distribution(values: Sequence[float], ps: Iterable[float], *, digits: int) -> dict:
    """Percentiles (100 is `max`), mean, min and count, rounded; {} for no values."""
    if not values:
        return {}
    rounded = {key: round(value, digits) for key, value in percentiles(values, ps).items()}
    return {
        **rounded,
        "mean": round(sum(values) / len(values), digits),
        "min": round(min(values), digits),
        "n": len(values),
    }


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text table: text left-aligned, numbers right-aligned."""
    rows = [[("" if cell is None else cell) for cell in row] for row in rows]
    text = [[str(cell) for cell in row] for row in rows]
    widths = [
        max([len(header), *(len(row[i]) for row in text)]) for i, header in enumerate(headers)
    ]
    numeric = [
        all(isinstance(row[i], int | float) or text[j][i] == "" for j, row in enumerate(rows))
        and any(isinstance(row[i], int | float) for row in rows)
        for i in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ).rstrip()

    out = [line(headers), line(["-" * width for width in widths])]
    out += [line(row) for row in text]
    return "\n".join(out)


def load_average() -> list[float]:
    return [round(load, 2) for load in os.getloadavg()]


def machine_info(*, database_url: str, redis_url: str | None = None) -> dict:
    """The machine, its software and PostgreSQL's settings; Redis's version when it is used."""
    import django
    import dramatiq

    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(meminfo.split("MemTotal:", 1)[1].split()[0])
    cpu_model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    with _admin_connect(database_url) as conn:
        postgres = conn.execute("SHOW server_version").fetchone()[0]
        postgres_settings = dict(
            conn.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s) "
                "ORDER BY name",
                [list(POSTGRES_SETTINGS)],
            ).fetchall()
        )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "dramatiq": dramatiq.__version__,
        "postgres": postgres,
        "postgres_settings": postgres_settings,
        "redis": redis_version(redis_url) if redis_url else None,
        "postgres_and_redis": "on this machine (127.0.0.1)",
        "load_average_at_start": load_average(),
    }


def describe_machine(machine: dict) -> str:
    return (
        f"{machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gb']} GB, "
        f"Python {machine['python']}, PostgreSQL {machine['postgres'].split()[0]}, "
        f"Redis {machine['redis']}; load average {machine['load_average_at_start']}"
    )


def command_line() -> str:
    module = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "bench"
    return " ".join(["python -m", f"bench.{module}", *sys.argv[1:]])


def results_write(name: str, report: dict) -> Path:
    """Write bench/results/<name>.json atomically; returns its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    body = {
        "benchmark": name,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **report,
    }
    tmp.write_text(json.dumps(body, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def results_finish(
    name: str, report: dict, *, correct: bool, check: bool = False, targets_met: bool = True
) -> int:
    """Write the results file, say where, and return the benchmark's exit status: 1 when a
    measurement was wrong, or when `--check` asked for the targets and one was missed."""
    path = results_write(name, report)
    print(f"wrote {path.relative_to(ROOT)}")
    return 0 if correct and (targets_met or not check) else 1


def log_path(name: str) -> Path:
    """Where a subprocess of a benchmark logs (under var/, which git ignores)."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return LOG_DIR / f"{name}.log"


def project_path(path: Path) -> str:
    """`path` as the result files name it: from the project's root, whatever checkout ran."""
    return str(path.relative_to(ROOT))


def process_comparison(
    measurements: list[dict], *, rate: str, count: str
) -> tuple[dict[int, dict], list[list]]:
    """Each process count's best round (the least disturbed by whatever else the machine ran),
    and a table row per measurement with its speed-up over the best single-process round."""
    best: dict[int, dict] = {}
    for result in measurements:
        current = best.get(result["processes"])
        if current is None or result[rate] > current[rate]:
            best[result["processes"]] = result
    single = best.get(1)
    rows = []
    for result in measurements:
        ratio = result[rate] / single[rate] if single and single[rate] else None
        sampled = result["sampled"]
        rows.append(
            [
                result["processes"],
                result["threads"],
                result[count],
                round(result["seconds"], 1),
                round(result[rate]),
                f"{ratio:.2f}x" if ratio else "",
                result["worker_cores_used"],
                result["postgres_cores_used"],
                sampled["machine_cores_busy_mean"],
                describe_backends(sampled),
            ]
        )
    return best, rows
