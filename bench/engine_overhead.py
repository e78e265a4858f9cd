"""Benchmark: what the project's broker and its engine cost a worker, against bare Dramatiq.

    python -m bench.engine_overhead [--messages 1000] [--rounds 5] [--samples 100]
                                    [--threads 8] [--gap-ms 100 200] [--floor-runs N]
                                    [--keep] [--check]

One worker process with `--threads` threads (Dramatiq's default, 8) runs no-ops, three ways:

  (a) stock    bare `@dramatiq.actor` no-op actors declared by this module, on
               dramatiq.brokers.redis.RedisBroker;
  (b) prompt   the same actors on the project's configured broker (settings.DRAMATIQ_BROKER,
               jobs.broker's PromptRedisBroker), which wakes an idle consumer as a message
               arrives;
  (c) steward  no-op Steward runs of the jobs bench.engine_overhead_jobs registers (JOBS of
               them, so that one job's lock does not turn most of a backlog into skips),
               requested through jobs.services.job_run_request and executed by the real
               worker command, `dramatiq ... django_dramatiq.setup django_dramatiq.tasks
               bench.engine_overhead_jobs jobs.tasks` (what `manage.py rundramatiq` execs, with
               the bench's jobs registered before jobs.tasks declares every job's actors):
               each run a JobRun row, an attempt, the job lock, its log line;
  (d) floor    the floor of a durable run: the least database work a recorded run needs, with
               no ORM, no Dramatiq and none of Steward's Python, on the same database: the
               same number of runs (--floor-runs, default --messages), each a jobs_jobrun row
               INSERTed (queued) at request time, then executed by a pool of `--threads`
               threads in this process, one psycopg 3 connection each, opened before and kept
               open (persistent connections): the run UPDATEd to running (conditional on its
               status), a jobs_jobrunattempt row INSERTed, the run UPDATEd to succeeded, the
               attempt UPDATEd to succeeded, the columns the engine writes, every statement in
               autocommit as the engine runs them: 5 commits a run;
  (d') floor_cte the same with the start pair and the finish pair each one statement
               (`WITH moved AS (UPDATE ... RETURNING id) INSERT ...`, `WITH ... UPDATE ...`):
               3 commits a run, what merging round trips could buy;

(a) and (b) with the project's broker options and middleware, on the bench's Redis database;
for (a) and (b) the worker is given this module as its broker module instead of
`django_dramatiq.setup`, so that it can run either broker, and this process sends through a
broker of the same class. Every worker uses a PostgreSQL database of the bench's own,
`<DATABASE_URL's name>_engine_overhead`, created and migrated at the start (dropped at the end
unless --keep).

Every round, for each part in turn (the order reverses every other round, so a burst of load
elsewhere on the machine hits all alike): an empty Redis database (and, for (c)-(d'), empty run
tables), a backlog of `--messages` no-op messages (runs, requested round-robin over the jobs),
then a freshly started worker drains it. (a) and (b) are timed by polling the queue's
unacknowledged messages every 5 ms, from the first acknowledgement to the last; (c) from the
database, from the first attempt's start to the last run's end, counting succeeded runs
(skipped ones are reported apart); (d) and (d') the same way, from their rows. Then, on the
same worker ((a)-(c)), idle between samples: messages sent (runs requested) one at a time, a
random `--gap-ms` apart, each timed from just before the send (the request) to the moment its
actor starts (the actor pushes the time it started to a Redis list), or its attempt's
`started_at`; same clock: one machine.

For (c) also: the SQL statements of one request and of one execution, captured in this
process around `job_run_request` and an in-process `job_run_execute` (the worker's code path);
the database sessions and transactions the worker's backlog cost, per run, read from
pg_stat_database; and the worker's log lines per run during the idle samples, at INFO.

Targets: (b) drains a backlog at >= 0.9x (a)'s rate and an idle (b) worker starts a message
within p50 <= 20 ms; (c) executes runs at >= 0.25x (a)'s message rate (best rounds: a durable
record costs commits that a bare message does not), logs at most 2 lines per no-op run and
starts an idle run within p50 <= 2x (a)'s. Whether (c)'s target is within reach at all:
(d)/(a), the floor's rate to a bare message's; (c)/(d), how far the engine is from the floor.
Writes bench/results/engine_overhead.json.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import re
import sys
import threading
import time
from collections import Counter

import dramatiq

from bench import harness

NAME = "engine_overhead"
MODULE = "bench.engine_overhead"  # as the worker imports it (not __main__)
BROKERS = {"stock": "dramatiq.brokers.redis.RedisBroker", "prompt": None}  # None: the project's
BROKER_ENV = "ENGINE_OVERHEAD_BROKER"
STAMPS_KEY = "engine_overhead:started"
PARTS = ("stock", "prompt", "steward")  # (a), (b), (c)
FLOOR_PARTS = ("floor", "floor_cte")  # (d), (d')
PART_LETTERS = {"stock": "a", "prompt": "b", "steward": "c", "floor": "d", "floor_cte": "d'"}
TARGET_RATIO = 0.9
TARGET_PROMPT_P50_MS = 20.0
TARGET_STEWARD_RATIO = 0.25
TARGET_STEWARD_LOG_LINES = 2.0
TARGET_STEWARD_P50_RATIO = 2.0
WARMUP = 3
POLL_SECONDS = 0.005
# (c): how often the bench looks for the end of a backlog in the database (cheap enough not to
# disturb the worker; the rate is timed from the rows' own timestamps), and for a run's end.
DRAIN_POLL_SECONDS = 0.1
RUN_POLL_SECONDS = 0.005
# (c): the real worker command's modules, with the bench's jobs registered between Django's
# setup and jobs.tasks, which declares the actors of every registered job.
JOBS_MODULE = "bench.engine_overhead_jobs"
STEWARD_WORKER_MODULES = [
    "django_dramatiq.setup",
    "django_dramatiq.tasks",
    JOBS_MODULE,
    "jobs.tasks",
]
STEWARD_WORKER_ENV = {"LOG_LEVEL": "INFO", "STEWARD_LOG_FORMAT": "text"}
STATEMENT_CHARS = 120
# A worker's log line, in the project's text format or in Dramatiq's own (its main process).
LOG_LINE = re.compile(
    r"^\S+ \S+ \[(?P<level>[A-Z]+)\] (?P<logger>[^:\s]+): "
    r"|^\[[^]]*\] \[PID \d+\] \[[^]]*\] \[(?P<dq_logger>[^]]+)\] \[(?P<dq_level>[A-Z]+)\]"
)
RUN_NUMBER = re.compile(r"#(\d+)\b")
TRANSACTION_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b", re.I)


# --- The brokers and actors, in this process and in the worker --------------------------------


def broker_path(kind: str) -> str:
    from django.conf import settings

    return BROKERS[kind] or settings.DRAMATIQ_BROKER["BROKER"]


def broker_build(kind: str) -> dramatiq.Broker:
    """A broker of `kind` with the project's options and middleware, built as django_dramatiq
    builds the configured one."""
    from django.conf import settings
    from django.utils.module_loading import import_string
    from django_dramatiq.apps import DjangoDramatiqConfig
    from django_dramatiq.utils import load_middleware

    config = settings.DRAMATIQ_BROKER
    middleware = [
        load_middleware(path, **DjangoDramatiqConfig.get_middleware_kwargs(path))
        for path in config.get("MIDDLEWARE", [])
    ]
    return import_string(broker_path(kind))(middleware=middleware, **config.get("OPTIONS", {}))


def noop() -> None:
    """Does nothing: a message's cost is all the broker's and the worker's."""


def stamp(sent_at: float) -> None:
    """Pushes when it started, next to when it was sent."""
    started = time.time()
    dramatiq.get_broker().client.rpush(STAMPS_KEY, f"{sent_at!r} {started!r}")


def actors_declare(broker: dramatiq.Broker) -> dict[str, dramatiq.Actor]:
    """The bench's actors on `broker`, bare: Dramatiq's default queue and options."""
    return {fn.__name__: dramatiq.actor(fn, broker=broker) for fn in (noop, stamp)}


def worker_setup() -> None:
    """The worker's broker module (`dramatiq bench.engine_overhead:worker_setup`), called in
    each worker process: Django, then the broker BROKER_ENV names, with the bench's actors."""
    harness.django_setup()
    broker = broker_build(os.environ[BROKER_ENV])
    dramatiq.set_broker(broker)
    actors_declare(broker)


class DramatiqWorker(harness.ManagedProcess):
    """`dramatiq --path . --processes 1 --threads T --worker-shutdown-timeout 30000 MODULES`,
    what `manage.py rundramatiq` execs; ready when its process is."""

    program = ("-m", "dramatiq")

    def __init__(
        self,
        *,
        modules: list[str],
        threads: int,
        database_url: str,
        redis_url: str,
        log_path,
        env: dict[str, str] | None = None,
    ):
        super().__init__(
            argv=[
                "--path",
                ".",
                "--processes",
                "1",
                "--threads",
                str(threads),
                "--worker-shutdown-timeout",
                "30000",
                *modules,
            ],
            log_path=log_path,
            database_url=database_url,
            redis_url=redis_url,
            ready_line=harness.WORKER_READY_LINE,
            env=env,
        )

    @classmethod
    def bare(cls, kind: str, **options) -> DramatiqWorker:
        """(a), (b): this module for its broker module (`bench.engine_overhead:worker_setup`),
        with the broker `kind`."""
        return cls(modules=[f"{MODULE}:worker_setup"], env={BROKER_ENV: kind}, **options)

    @classmethod
    def steward(cls, **options) -> DramatiqWorker:
        """(c): the real worker's modules, and the bench's jobs; the project's broker."""
        return cls(modules=STEWARD_WORKER_MODULES, env=STEWARD_WORKER_ENV, **options)


# --- (a) and (b): bare Dramatiq messages through either broker ----------------------------------


class DrainWatch:
    """Counts a queue's unacknowledged messages (`<namespace>:<queue>.msgs`, from which an ack
    deletes its message) every POLL_SECONDS, in a thread: when the count first fell below
    `total` (the first ack) and how many were left then, and when it reached zero."""

    def __init__(self, broker, queue_name: str, total: int) -> None:
        self.client = broker.client
        self.key = f"{broker.namespace}:{queue_name}.msgs"
        self.total = total
        self.first: tuple[float, int] | None = None
        self.last: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-drain", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            left = self.client.hlen(self.key)
            now = time.perf_counter()
            if self.first is None and left < self.total:
                self.first = (now, left)
            if left == 0:
                self.last = now
                return

    def start(self) -> None:
        self._thread.start()

    def wait(self, timeout: float) -> bool:
        self._thread.join(timeout)
        self._stop.set()
        self._thread.join(1)
        return self.last is not None

    def report(self) -> dict:
        if self.first is None or self.last is None:
            left = self.client.hlen(self.key)
            return {"drained": False, "messages_left": left, "messages_per_second": 0.0}
        first_at, left_at_first = self.first
        seconds = self.last - first_at
        return {
            "drained": True,
            "messages_timed": left_at_first,
            "seconds": round(seconds, 3),
            "messages_per_second": round(left_at_first / seconds, 1) if seconds else 0.0,
        }


def latency_sample(actor: dramatiq.Actor, client, *, timeout: float) -> dict:
    sent_at = time.time()
    actor.send(sent_at)
    returned = time.time()
    popped = client.blpop([STAMPS_KEY], timeout=timeout)
    if popped is None:
        raise RuntimeError(f"no message started within {timeout:g} s")
    sent, started = (float(value) for value in popped[1].split())
    if sent != sent_at:
        raise RuntimeError(f"a stale stamp: sent at {sent}, expected {sent_at}")
    return {
        "latency_ms": (started - sent_at) * 1000,
        "send_ms": (returned - sent_at) * 1000,
    }


def measure_round(
    kind: str,
    *,
    broker,
    actors: dict,
    messages: int,
    samples: int,
    threads: int,
    gap_ms: list[float],
    database_url: str,
    redis_url: str,
    timeout: float,
    label: str,
    rng,
) -> dict:
    """A backlog of `messages` drained by a fresh worker, then `samples` idle-latency samples
    on it."""
    harness.redis_flush(redis_url)
    noop_actor = actors["noop"]
    send_started = time.perf_counter()
    for _ in range(messages):
        noop_actor.send()
    send_seconds = time.perf_counter() - send_started
    worker = DramatiqWorker.bare(
        kind,
        threads=threads,
        database_url=database_url,
        redis_url=redis_url,
        log_path=harness.log_path(f"{NAME}-{label}"),
    )
    watch = DrainWatch(broker, noop_actor.queue_name, messages)
    load_before = harness.load_average()
    watch.start()
    worker.start()
    try:
        cpu_before = worker.cpu_seconds()
        watch.wait(timeout)
        drain = watch.report()
        worker_cpu = worker.cpu_seconds() - cpu_before
        latencies = []
        for index in range(WARMUP + samples):
            time.sleep(rng.uniform(*gap_ms) / 1000)
            result = latency_sample(actors["stamp"], broker.client, timeout=timeout)
            if index >= WARMUP:
                latencies.append(result)
    finally:
        worker.stop()
    dead = broker.client.hlen(f"{broker.namespace}:{noop_actor.queue_name}.XQ.msgs")
    return {
        "broker": kind,
        "label": label,
        "messages": messages,
        "send_seconds": round(send_seconds, 3),
        **drain,
        "dead_lettered": dead,
        "worker_cpu_seconds_from_ready": round(worker_cpu, 2),
        "latency_samples": latencies,
        "correct": drain["drained"] and dead == 0 and len(latencies) == samples,
        "load_average_before": load_before,
        "load_average_after": harness.load_average(),
        "worker_log": harness.project_path(worker.log_path),
    }


def stats(values: list[float]) -> dict:
    return harness.distribution(values, (50, 95, 99, 100), digits=2)


# --- (c): no-op Steward runs, requested through the engine, executed by the real worker --------


def steward_jobs() -> list[str]:
    """The bench's no-op jobs, registered in this process (once)."""
    import importlib

    return importlib.import_module(JOBS_MODULE).JOBS


def steward_request(job: str, reason: str, **options):
    """A run of `job`, requested through the one request function (sent once it commits)."""
    from jobs.services import job_run_request

    return job_run_request(
        job=job, trigger="cli", requested_by="bench", reason=f"engine overhead: {reason}", **options
    )


def steward_tables_empty() -> None:
    """Delete every run and attempt: each round starts from empty tables."""
    from django.db import connection

    from jobs.models import JobRun, JobRunAttempt

    with connection.cursor() as cursor:
        for model in (JobRunAttempt, JobRun):
            cursor.execute(f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)}")


class TransactionCount:
    """An execute wrapper noting, per statement, whether it ran inside an atomic block: one
    outside commits on its own (autocommit), consecutive ones inside share their block's."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.in_block: list[bool] = []

    def __call__(self, execute, sql, params, many, context):
        self.in_block.append(self.connection.in_atomic_block)
        return execute(sql, params, many, context)

    @property
    def transactions(self) -> int:
        count, previous = 0, False
        for inside in self.in_block:
            count += not (inside and previous)
            previous = inside
        return count


class LogRecords(logging.Handler):
    """The records of INFO and above that reach the root logger while installed, in place of
    its handlers (they are kept off the bench's own output)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self._replaced: list[logging.Handler] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"[{record.levelname}] {record.name}: {record.getMessage()}")

    def __enter__(self) -> LogRecords:
        root = logging.getLogger()
        self._replaced, root.handlers = root.handlers, [self]
        return self

    def __exit__(self, *exc_info) -> None:
        logging.getLogger().handlers = self._replaced


def statements_capture(call):
    """Run `call()` capturing its statements (Django's CaptureQueriesContext), the
    transactions they make and the log records it writes; returns (result, report)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counter = TransactionCount(connection)
    with (
        CaptureQueriesContext(connection) as captured,
        connection.execute_wrapper(counter),
        LogRecords() as logged,
    ):
        result = call()
    statements = [query["sql"] for query in captured.captured_queries]
    control = [sql for sql in statements if TRANSACTION_CONTROL.match(sql)]
    return result, {
        "statements": len(statements),
        "transaction_control_statements": len(control),
        "transactions": counter.transactions,
        "statement_list": [sql[:STATEMENT_CHARS] for sql in statements],
        "log_lines": len(logged.lines),
        "log_line_list": logged.lines,
    }


def steward_statements(job: str) -> dict:
    """The SQL of one request (job_run_request, its message sent on commit) and of one
    in-process execution of that run (job_run_execute, the worker's code path), in this
    process; the second of two passes, so that first-use work (caches, imports) is left out.
    No worker is running: the message is left in Redis, which the caller empties."""
    from jobs.runner import job_run_execute

    for _ in range(2):
        run, at_request = statements_capture(lambda: steward_request(job, "statements"))
        executed, at_execution = statements_capture(
            lambda run=run: job_run_execute(run_id=run.pk, message_id=run.message_id)
        )
    return {
        "job": job,
        "run_status": executed.status,
        "at_request": at_request,
        "at_execution": at_execution,
        "note": (
            "statements as Django's CaptureQueriesContext lists them, an atomic block's BEGIN "
            "and COMMIT included (transaction_control_statements); a statement outside an "
            "atomic block commits on its own. The worker keeps its connections between "
            "messages (DATABASE_CONN_MAX_AGE) and checks one before reuse only once it has "
            "been idle (jobs.middleware.DatabaseConnections): see each round's server_side"
        ),
    }


def database_counters(database_url: str, database: str) -> dict:
    """pg_stat_database's sessions and transactions of `database` (a backend's counts arrive
    when it ends, or within seconds of going idle)."""
    with harness._admin_connect(database_url) as conn:
        sessions, commits, rollbacks = conn.execute(
            "SELECT sessions, xact_commit, xact_rollback FROM pg_stat_database WHERE datname = %s",
            [database],
        ).fetchone()
    return {"sessions": sessions, "transactions": commits + rollbacks}


def steward_backlog_wait(total: int, *, timeout: float) -> bool:
    """Whether all `total` runs finished within `timeout` seconds."""
    from jobs.models import FINISHED_STATUSES, JobRun

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if JobRun.objects.filter(status__in=FINISHED_STATUSES).count() >= total:
            return True
        time.sleep(DRAIN_POLL_SECONDS)
    return False


def steward_backlog_report(total: int) -> dict:
    """From the run tables: statuses, and the rate from the first attempt's start to the last
    run's end (succeeded runs only; skipped ones are counted apart)."""
    from django.db.models import Count, Max, Min

    from jobs.models import FINISHED_STATUSES, JobRun, JobRunAttempt, RunStatus

    statuses = Counter(dict(JobRun.objects.values_list("status").annotate(n=Count("id"))))
    first_start = JobRunAttempt.objects.aggregate(at=Min("started_at"))["at"]
    last_finish = JobRun.objects.aggregate(at=Max("finished_at"))["at"]
    attempts = JobRunAttempt.objects.count()
    succeeded = statuses.get(RunStatus.SUCCEEDED, 0)
    skipped = statuses.get(RunStatus.SKIPPED, 0)
    finished = sum(n for status, n in statuses.items() if status in FINISHED_STATUSES)
    report = {
        "drained": finished >= total,
        "runs": total,
        "statuses": dict(sorted(statuses.items())),
        "succeeded": succeeded,
        "skipped": skipped,
        "attempts": attempts,
        "runs_left": total - finished,
    }
    if not report["drained"] or first_start is None or last_finish is None:
        return {**report, "runs_per_second": 0.0}
    seconds = (last_finish - first_start).total_seconds()
    return {
        **report,
        "seconds": round(seconds, 3),
        "runs_per_second": round(succeeded / seconds, 1) if seconds else 0.0,
        "finished_per_second": round(finished / seconds, 1) if seconds else 0.0,
    }


def steward_latency_sample(job: str, *, timeout: float) -> dict:
    """Request one run and wait for its end: from just before the request to its attempt's
    `started_at`, written by the worker."""
    from jobs.models import FINISHED_STATUSES, JobRun, JobRunAttempt

    asked = time.time()
    run = steward_request(job, "latency")
    returned = time.time()
    deadline = time.monotonic() + timeout
    while (
        status := JobRun.objects.filter(pk=run.pk).values_list("status", flat=True).get()
    ) not in FINISHED_STATUSES:
        if time.monotonic() > deadline:
            raise RuntimeError(f"run #{run.pk} did not finish within {timeout:g} s")
        time.sleep(RUN_POLL_SECONDS)
    started = (
        JobRunAttempt.objects.filter(run_id=run.pk)
        .order_by("number")
        .values_list("started_at", flat=True)
        .first()
    )
    return {
        "run_id": run.pk,
        "job": job,
        "status": status,
        "latency_ms": (started.timestamp() - asked) * 1000 if started else None,
        "send_ms": (returned - asked) * 1000,
    }


def log_lines(text: str, run_ids: set[int]) -> dict:
    """A worker log's lines: how many, by logger and level, and how many are the engine's
    (the `steward.jobs` logger) or name one of `run_ids`."""
    loggers: Counter = Counter()
    levels: Counter = Counter()
    engine = 0
    lines = [line for line in text.splitlines() if line.strip()]
    for line in lines:
        match = LOG_LINE.match(line)
        logger = (match["logger"] or match["dq_logger"]) if match else "(continued)"
        level = (match["level"] or match["dq_level"]) if match else ""
        loggers[logger] += 1
        levels[level] += 1
        names_run = any(int(number) in run_ids for number in RUN_NUMBER.findall(line))
        engine += logger == "steward.jobs" or names_run
    return {
        "lines": len(lines),
        "engine_lines": engine,
        "by_logger": dict(loggers.most_common()),
        "by_level": dict(levels.most_common()),
        "sample": lines[:6],
    }


def measure_steward_round(
    *,
    jobs: list[str],
    runs: int,
    samples: int,
    threads: int,
    gap_ms: list[float],
    database_url: str,
    database: str,
    redis_url: str,
    timeout: float,
    label: str,
    rng,
    statements: bool,
) -> dict:
    """Empty tables and Redis; (first round) the statements of one request and one execution;
    a backlog of `runs` runs requested with no worker running, drained by a fresh worker; then
    `samples` idle-latency samples on it, whose log lines are counted."""
    from django.db import connection

    harness.redis_flush(redis_url)
    steward_tables_empty()
    statement_report = None
    if statements:
        statement_report = steward_statements(jobs[0])
        harness.redis_flush(redis_url)
        steward_tables_empty()
    request_started = time.perf_counter()
    for index in range(runs):
        steward_request(jobs[index % len(jobs)], "backlog")
    request_seconds = time.perf_counter() - request_started
    worker = DramatiqWorker.steward(
        threads=threads,
        database_url=harness.url_with_database(database_url, database),
        redis_url=redis_url,
        log_path=harness.log_path(f"{NAME}-{label}"),
    )
    # This process's connection ends, so that its own transactions are counted before.
    connection.close()
    counters_before = database_counters(database_url, database)
    load_before = harness.load_average()
    worker.start()
    try:
        cpu_before = worker.cpu_seconds()
        steward_backlog_wait(runs, timeout=timeout)
        worker_cpu = worker.cpu_seconds() - cpu_before
        time.sleep(0.5)  # the last messages' connections end
        counters_after = database_counters(database_url, database)
        backlog = steward_backlog_report(runs)
        log_offset = worker.log_path.stat().st_size
        latencies, phase_runs = [], set()
        for index in range(WARMUP + samples):
            time.sleep(rng.uniform(*gap_ms) / 1000)
            result = steward_latency_sample(jobs[index % len(jobs)], timeout=timeout)
            phase_runs.add(result["run_id"])
            if index >= WARMUP:
                latencies.append(result)
        time.sleep(0.5)  # the last run's line reaches the log
        with open(worker.log_path, "rb") as log:
            log.seek(log_offset)
            idle_log = log.read().decode(errors="replace")
    finally:
        worker.stop()
    finished = backlog["runs"] - backlog["runs_left"]
    server_side = {
        key: counters_after[key] - counters_before[key] for key in ("sessions", "transactions")
    }
    server_side.update(
        {
            f"{key}_per_run": round(value / finished, 2) if finished else None
            for key, value in list(server_side.items())
        }
    )
    logged = log_lines(idle_log, phase_runs)
    not_started = [s for s in latencies if s["status"] != "succeeded" or s["latency_ms"] is None]
    return {
        "part": "steward",
        "label": label,
        "runs": runs,
        "request_seconds": round(request_seconds, 3),
        "requests_per_second": round(runs / request_seconds, 1) if request_seconds else 0.0,
        **backlog,
        "server_side": {
            **server_side,
            "note": "pg_stat_database deltas from before the worker started until 0.5 s after "
            "the backlog drained, over the runs finished: the worker's connections and "
            "transactions (this process's few polls included)",
        },
        "worker_cpu_seconds_from_ready": round(worker_cpu, 2),
        "latency_samples": [s for s in latencies if s not in not_started],
        "latency_samples_not_started": not_started,
        "idle_log": {
            "runs": len(phase_runs),
            **logged,
            "engine_lines_per_run": round(logged["engine_lines"] / len(phase_runs), 2),
            "lines_per_run": round(logged["lines"] / len(phase_runs), 2),
        },
        "statements": statement_report,
        "correct": backlog["drained"]
        and backlog["succeeded"] + backlog["skipped"] == runs
        and not not_started
        and len(latencies) == samples
        and (statement_report is None or statement_report["run_status"] == "succeeded"),
        "load_average_before": load_before,
        "load_average_after": harness.load_average(),
        "worker_log": harness.project_path(worker.log_path),
    }


# --- (d), (d'): the floor of a durable run -------------------------------------------------------
#
# The least database work a recorded run needs, with neither Django's ORM, nor Dramatiq, nor
# Steward's Python: the rows (c) makes durable, written with psycopg 3 straight from a thread
# pool, each statement in autocommit as the engine runs them. The columns and conditions are
# those of the statements (c) captured (`statements` in the results), the job lock, the reads
# and the broker left out: none of them is a write that a run's record needs.

FLOOR_REQUEST_SQL = (
    "INSERT INTO jobs_jobrun (job, trigger, requested_by, reason, as_of, slot, dry_run, status, "
    "status_reason, created_at, started_at, finished_at, duration_ms, attempt_count, summary, "
    "error, traceback, message_id, code_version, retry_of_id, idempotency_key, "
    "request_fingerprint, parent_id, shard, repairs, lock_scope, params, cancel_reason, "
    "cancel_requested_by, urgent, progress) "
    "VALUES (%(job)s, 'cli', 'bench', %(reason)s, %(at)s, NULL, false, 'queued', '', %(at)s, "
    "NULL, NULL, NULL, 0, '{}'::jsonb, '', '', %(message_id)s, %(code_version)s, NULL, NULL, '', "
    "NULL, NULL, '[]'::jsonb, '', '{}'::jsonb, '', '', false, '{}'::jsonb) RETURNING id"
)
FLOOR_RUN_START_SQL = (
    "UPDATE jobs_jobrun SET status = 'running', started_at = COALESCE(started_at, %(at)s), "
    "attempt_count = 1 WHERE id = %(run)s AND status IN ('queued', 'running')"
)
FLOOR_ATTEMPT_START_SQL = (
    "INSERT INTO jobs_jobrunattempt (run_id, number, status, started_at, finished_at, worker, "
    "message_id, error, traceback, log) "
    "VALUES (%(run)s, 1, 'running', %(at)s, NULL, %(worker)s, %(message_id)s, '', '', '[]') "
    "RETURNING id"
)
FLOOR_RUN_FINISH_SQL = (
    "UPDATE jobs_jobrun SET status = 'succeeded', summary = '{}'::jsonb, status_reason = '', "
    "finished_at = %(at)s, duration_ms = %(duration_ms)s "
    "WHERE id = %(run)s AND status IN ('running')"
)
FLOOR_ATTEMPT_FINISH_SQL = (
    "UPDATE jobs_jobrunattempt SET status = 'succeeded', finished_at = %(at)s "
    "WHERE id = %(attempt)s"
)
# (d'): each pair of writes in one statement, the second conditional on the first.
FLOOR_START_CTE_SQL = (
    "WITH moved AS (UPDATE jobs_jobrun SET status = 'running', "
    "started_at = COALESCE(started_at, %(at)s), attempt_count = 1 "
    "WHERE id = %(run)s AND status IN ('queued', 'running') RETURNING id) "
    "INSERT INTO jobs_jobrunattempt (run_id, number, status, started_at, finished_at, worker, "
    "message_id, error, traceback, log) "
    "SELECT id, 1, 'running', %(at)s, NULL, %(worker)s, %(message_id)s, '', '', '[]' "
    "FROM moved RETURNING id"
)
FLOOR_FINISH_CTE_SQL = (
    "WITH finished AS (UPDATE jobs_jobrun SET status = 'succeeded', summary = '{}'::jsonb, "
    "status_reason = '', finished_at = %(at)s, duration_ms = %(duration_ms)s "
    "WHERE id = %(run)s AND status IN ('running') RETURNING id) "
    "UPDATE jobs_jobrunattempt SET status = 'succeeded', finished_at = %(at)s "
    "WHERE id = %(attempt)s AND run_id IN (SELECT id FROM finished)"
)
FLOOR_EXECUTION_SQL = {
    "floor": [
        FLOOR_RUN_START_SQL,
        FLOOR_ATTEMPT_START_SQL,
        FLOOR_RUN_FINISH_SQL,
        FLOOR_ATTEMPT_FINISH_SQL,
    ],
    "floor_cte": [FLOOR_START_CTE_SQL, FLOOR_FINISH_CTE_SQL],
}


def floor_sql(part: str) -> dict:
    """The statements of one run of `part`: its request, its execution; each commits alone."""
    statements = [FLOOR_REQUEST_SQL, *FLOOR_EXECUTION_SQL[part]]
    return {
        "at_request": [FLOOR_REQUEST_SQL],
        "at_execution": FLOOR_EXECUTION_SQL[part],
        "statements_per_run": len(statements),
        "commits_per_run": len(statements),
    }


def wal_counters(database_url: str) -> dict:
    """pg_stat_wal's records and syncs (the whole server's, whoever wrote) and the WAL's end."""
    with harness._admin_connect(database_url) as conn:
        records, syncs, lsn = conn.execute(
            "SELECT wal_records, wal_sync, pg_current_wal_lsn() - '0/0'::pg_lsn FROM pg_stat_wal"
        ).fetchone()
    return {"records": records, "syncs": syncs, "bytes": int(lsn)}


class FloorWorker(threading.Thread):
    """A thread of (d) or (d') with its own connection, open (and kept open) before the start:
    takes (run id, message id) pairs off `todo` until none is left, and writes each run's
    start and finish as the engine does, in autocommit."""

    def __init__(self, conn, *, todo, merged: bool, worker: str, start) -> None:
        super().__init__(name="bench-floor", daemon=True)
        self.conn = conn
        self.todo = todo
        self.merged = merged
        self.worker = worker
        self.start_event = start
        self.executed = 0
        self.not_moved = 0
        self.first: float | None = None
        self.last: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        import queue
        from datetime import UTC, datetime

        cursor = self.conn.cursor()
        self.start_event.wait()
        try:
            while True:
                try:
                    run_id, message_id = self.todo.get_nowait()
                except queue.Empty:
                    return
                began = time.perf_counter()
                started = datetime.now(UTC)
                values = {
                    "run": run_id,
                    "at": started,
                    "worker": self.worker,
                    "message_id": message_id,
                }
                if self.merged:
                    row = cursor.execute(FLOOR_START_CTE_SQL, values).fetchone()
                else:
                    cursor.execute(FLOOR_RUN_START_SQL, values)
                    row = (
                        cursor.execute(FLOOR_ATTEMPT_START_SQL, values).fetchone()
                        if cursor.rowcount == 1
                        else None
                    )
                if row is None:
                    self.not_moved += 1
                    continue
                finished = datetime.now(UTC)
                values = {
                    "run": run_id,
                    "attempt": row[0],
                    "at": finished,
                    "duration_ms": int((finished - started).total_seconds() * 1000),
                }
                if self.merged:
                    cursor.execute(FLOOR_FINISH_CTE_SQL, values)
                else:
                    cursor.execute(FLOOR_RUN_FINISH_SQL, values)
                    cursor.execute(FLOOR_ATTEMPT_FINISH_SQL, values)
                self.executed += 1
                self.first = began if self.first is None else self.first
                self.last = time.perf_counter()
        except BaseException as error:  # reported with the round
            self.error = error
        finally:
            cursor.close()


def measure_floor_round(
    part: str,
    *,
    jobs: list[str],
    runs: int,
    threads: int,
    database_url: str,
    database: str,
    timeout: float,
    label: str,
    **_ignored,
) -> dict:
    """Empty run tables; `runs` runs requested (a queued row each) on one connection; then
    `threads` threads, one kept-open connection each, execute them; timed as (c) is, from the
    first attempt's start to the last run's end, read from the rows."""
    import queue
    import socket
    import uuid
    from datetime import UTC, datetime

    import psycopg
    from django.db import connection

    from jobs.conf import conf

    steward_tables_empty()
    connection.close()  # its transactions are counted before
    url = harness.url_with_database(database_url, database)
    todo: queue.SimpleQueue = queue.SimpleQueue()
    request_started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for index in range(runs):
            message_id = str(uuid.uuid4())
            (run_id,) = conn.execute(
                FLOOR_REQUEST_SQL,
                {
                    "job": jobs[index % len(jobs)],
                    "reason": "engine overhead: floor",
                    "at": datetime.now(UTC),
                    "message_id": message_id,
                    "code_version": conf.CODE_VERSION,
                },
            ).fetchone()
            todo.put((run_id, message_id))
    request_seconds = time.perf_counter() - request_started
    start = threading.Event()
    worker_name = f"{socket.gethostname()}:{os.getpid()}"
    conns = [psycopg.connect(url, autocommit=True) for _ in range(threads)]
    time.sleep(0.5)  # the request connection's end reaches pg_stat_database
    counters_before = database_counters(database_url, database)
    wal_before = wal_counters(database_url)
    load_before = harness.load_average()
    pool = [
        FloorWorker(conn, todo=todo, merged=part == "floor_cte", worker=worker_name, start=start)
        for conn in conns
    ]
    for thread in pool:
        thread.start()
    cpu_before = time.process_time()
    start.set()
    for thread in pool:
        thread.join(timeout)
    cpu = time.process_time() - cpu_before
    for conn in conns:
        conn.close()
    time.sleep(0.5)  # the closed sessions' counts (their WAL syncs too) arrive
    counters_after = database_counters(database_url, database)
    wal_after = wal_counters(database_url)
    errors = [repr(t.error) for t in pool if t.error is not None]
    alive = sum(t.is_alive() for t in pool)
    backlog = steward_backlog_report(runs)
    firsts = [t.first for t in pool if t.first is not None]
    lasts = [t.last for t in pool if t.last is not None]
    executed = sum(t.executed for t in pool)
    in_process = max(lasts) - min(firsts) if firsts and lasts else 0.0
    server_side = {
        key: counters_after[key] - counters_before[key] for key in ("sessions", "transactions")
    }
    wal = {key: wal_after[key] - wal_before[key] for key in ("records", "syncs", "bytes")}
    per_run = {
        "transactions_per_run": round(server_side["transactions"] / executed, 2)
        if executed
        else None,
        "wal_records_per_run": round(wal["records"] / executed, 2) if executed else None,
        "wal_syncs_per_run": round(wal["syncs"] / executed, 2) if executed else None,
        "wal_bytes_per_run": round(wal["bytes"] / executed) if executed else None,
    }
    sql = floor_sql(part)
    return {
        "part": part,
        "label": label,
        "runs": runs,
        "threads": threads,
        "connections": threads,
        "request_seconds": round(request_seconds, 3),
        "requests_per_second": round(runs / request_seconds, 1) if request_seconds else 0.0,
        **backlog,
        "executed": executed,
        "not_moved": sum(t.not_moved for t in pool),
        "seconds_in_process": round(in_process, 3),
        "runs_per_second_in_process": round(executed / in_process, 1) if in_process else 0.0,
        "statements_per_run": sql["statements_per_run"],
        "commits_per_run": sql["commits_per_run"],
        "server_side": {
            **server_side,
            **wal,
            **per_run,
            "note": "execution only (the request phase is before): pg_stat_database deltas of "
            "the bench's database (sessions, transactions: psycopg's preparing a statement, "
            "once per statement and connection, counts one too); pg_stat_wal and the WAL's "
            "end, the whole server's, whoever else wrote meanwhile (a backend's WAL syncs "
            "arrive when it ends: the connections are closed before they are read)",
        },
        "process_cpu_seconds": round(cpu, 2),
        "errors": errors,
        "correct": backlog["drained"]
        and backlog["succeeded"] == runs
        and executed == runs
        and not errors
        and not alive,
        "load_average_before": load_before,
        "load_average_after": harness.load_average(),
    }


# --- Command line -------------------------------------------------------------------------------


def ratio(numerator: float | None, denominator: float | None) -> float:
    return numerator / denominator if numerator is not None and denominator else 0.0


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.engine_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--messages", type=int, default=1_000, help="backlog per round, messages or runs (1,000)"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds per part (5)")
    parser.add_argument(
        "--samples", type=int, default=100, help="idle-latency samples per part, all rounds (100)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=harness.DEFAULT_THREADS,
        help=f"worker threads (Dramatiq's default, {harness.DEFAULT_THREADS})",
    )
    parser.add_argument(
        "--gap-ms",
        type=float,
        nargs=2,
        default=[100.0, 200.0],
        metavar=("MIN", "MAX"),
        help="idle gap before each latency sample, drawn uniformly (100 200)",
    )
    parser.add_argument(
        "--floor-runs",
        type=int,
        default=None,
        help="runs per round of (d) and (d') (default: --messages, as (c))",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="per drain, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.messages < 1:
        parser.error("--rounds and --messages must be at least 1")
    floor_runs = args.messages if args.floor_runs is None else args.floor_runs
    if floor_runs < 1:
        parser.error("--floor-runs must be at least 1")

    database_url, redis_url = harness.bench_urls()
    harness.django_setup()
    from django.conf import settings

    jobs = steward_jobs()
    database = f"{harness.database_name(database_url)}_{NAME}"
    worker_database_url = harness.url_with_database(database_url, database)
    machine = harness.machine_info(database_url=database_url, redis_url=redis_url)
    samples_per_round = math.ceil(args.samples / args.rounds)
    print(f"Machine: {harness.describe_machine(machine)}")
    print(
        f"{args.rounds} round(s) per part, (a) stock {broker_path('stock')}, (b) prompt "
        f"{broker_path('prompt')}, (c) steward no-op runs of {len(jobs)} jobs on the prompt "
        f"broker: a backlog of {args.messages:,} no-op messages or runs drained by 1 process x "
        f"{args.threads} threads, then {samples_per_round} idle-latency samples "
        f"{args.gap_ms[0]:g}-{args.gap_ms[1]:g} ms apart; Redis {redis_url}, database "
        f"{database}; (d) floor and (d') floor with merged writes: {floor_runs:,} runs by "
        f"{args.threads} threads, one kept-open psycopg connection each, on the same database",
        flush=True,
    )
    harness.database_create(database_url, database)
    harness.django_use_database(database, migrate=True)
    brokers = {kind: broker_build(kind) for kind in BROKERS}
    actors = {kind: actors_declare(broker) for kind, broker in brokers.items()}
    rng = random.Random(7)
    rounds: list[dict] = []
    try:
        for round_number in range(1, args.rounds + 1):
            every = PARTS + FLOOR_PARTS
            order = list(every) if round_number % 2 else list(reversed(every))
            for part in order:
                label = f"{part}-{round_number}"
                common = {
                    "samples": samples_per_round,
                    "threads": args.threads,
                    "gap_ms": args.gap_ms,
                    "redis_url": redis_url,
                    "timeout": args.timeout,
                    "label": label,
                    "rng": rng,
                }
                if part in FLOOR_PARTS:
                    result = measure_floor_round(
                        part,
                        jobs=jobs,
                        runs=floor_runs,
                        database_url=database_url,
                        database=database,
                        **common,
                    )
                elif part == "steward":
                    result = measure_steward_round(
                        jobs=jobs,
                        runs=args.messages,
                        database_url=database_url,
                        database=database,
                        statements=round_number == 1,
                        **common,
                    )
                else:
                    result = {
                        "part": part,
                        **measure_round(
                            part,
                            broker=brokers[part],
                            actors=actors[part],
                            messages=args.messages,
                            database_url=worker_database_url,
                            **common,
                        ),
                    }
                rounds.append(result)
                print(
                    f"  round {round_number}, ({PART_LETTERS[part]}) {part}: "
                    f"{describe_round(result, timeout=args.timeout)}",
                    flush=True,
                )
    finally:
        harness.redis_flush(redis_url)
        for broker in brokers.values():
            broker.close()
        harness.django_release_database()
        if not args.keep:
            harness.database_drop(database_url, database)

    summary = {}
    for part in PARTS:
        measured = [r for r in rounds if r["part"] == part]
        key = "runs_per_second" if part == "steward" else "messages_per_second"
        rates = [r[key] for r in measured]
        samples = [s for r in measured for s in r["latency_samples"]]
        summary[part] = {
            "part": PART_LETTERS[part],
            "broker": broker_path("prompt" if part == "steward" else part),
            f"{key}_best": max(rates),
            f"{key}_median": round(harness.percentile(rates, 50), 1),
            f"{key}_rounds": rates,
            "latency_ms": stats([s["latency_ms"] for s in samples]),
            "send_ms": stats([s["send_ms"] for s in samples]),
        }
    steward = summary["steward"]
    steward_rounds = [r for r in rounds if r["part"] == "steward"]
    requests = [r["requests_per_second"] for r in steward_rounds]
    idle_runs = sum(r["idle_log"]["runs"] for r in steward_rounds)
    engine_lines = sum(r["idle_log"]["engine_lines"] for r in steward_rounds)
    all_lines = sum(r["idle_log"]["lines"] for r in steward_rounds)
    finished = sum(r["runs"] - r["runs_left"] for r in steward_rounds)
    statements = steward_rounds[0]["statements"]
    steward.update(
        {
            "jobs": jobs,
            "runs_requested": sum(r["runs"] for r in steward_rounds),
            "runs_succeeded": sum(r["succeeded"] for r in steward_rounds),
            "runs_skipped": sum(r["skipped"] for r in steward_rounds),
            "skipped_by_round": [r["skipped"] for r in steward_rounds],
            "requests_per_second_best": max(requests),
            "requests_per_second_median": round(harness.percentile(requests, 50), 1),
            "requests_per_second_rounds": requests,
            "statements_at_request": statements["at_request"]["statements"],
            "statements_at_execution": statements["at_execution"]["statements"],
            "transactions_at_request": statements["at_request"]["transactions"],
            "transactions_at_execution": statements["at_execution"]["transactions"],
            "statements": statements,
            "worker_sessions_per_run": round(
                sum(r["server_side"]["sessions"] for r in steward_rounds) / finished, 2
            )
            if finished
            else None,
            "worker_transactions_per_run": round(
                sum(r["server_side"]["transactions"] for r in steward_rounds) / finished, 2
            )
            if finished
            else None,
            "log_lines_per_run": round(engine_lines / idle_runs, 2) if idle_runs else None,
            "worker_log_lines_per_run_all_loggers": round(all_lines / idle_runs, 2)
            if idle_runs
            else None,
            "log_runs_counted": idle_runs,
        }
    )
    stock, prompt = summary["stock"], summary["prompt"]
    ratios = {
        "prompt_vs_stock": (prompt, "messages_per_second"),
        "steward_vs_stock": (steward, "runs_per_second"),
    }
    comparisons = {}
    for name, (other, key) in ratios.items():
        by_round = [
            round(ratio(o[key], s["messages_per_second"]), 2)
            for s, o in zip(
                [r for r in rounds if r["part"] == "stock"],
                [r for r in rounds if r["part"] == other_part(name)],
                strict=True,
            )
        ]
        comparisons[name] = {
            "ratio_best": round(ratio(other[f"{key}_best"], stock["messages_per_second_best"]), 3),
            "ratio_median": round(
                ratio(other[f"{key}_median"], stock["messages_per_second_median"]), 3
            ),
            "ratio_by_round": by_round,
        }
    stock_p50 = stock["latency_ms"].get("p50")
    prompt_p50 = prompt["latency_ms"].get("p50", math.inf)
    steward_p50 = steward["latency_ms"].get("p50", math.inf)
    p50_ratio = ratio(steward_p50, stock_p50) if stock_p50 else math.inf
    comparisons["steward_vs_stock"]["latency_p50_ratio"] = round(p50_ratio, 3)
    log_lines_per_run = steward["log_lines_per_run"]
    floor = floor_summary(rounds, summary)

    rows = []
    for part, result in summary.items():
        key = "runs_per_second" if part == "steward" else "messages_per_second"
        latency = result["latency_ms"]
        rows.append(
            [
                f"({result['part']}) {part}",
                "no-op Steward runs" if part == "steward" else "bare messages",
                result["broker"],
                round(result[f"{key}_best"]),
                round(result[f"{key}_median"]),
                *(round(latency.get(k, 0.0), 1) for k in ("p50", "p95", "p99", "max")),
                latency.get("n", 0),
            ]
        )
    for part in FLOOR_PARTS:
        result = floor["parts"][part]
        rows.append(
            [
                f"({result['part']}) {part}",
                f"durable records alone, {result['commits_per_run']} commits/run",
                "none: psycopg, no ORM",
                round(result["runs_per_second_best"]),
                round(result["runs_per_second_median"]),
                *([None] * 5),
            ]
        )
    print()
    print(
        harness.table(
            [
                "part",
                "what",
                "broker",
                "best /s",
                "median /s",
                "idle p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "samples",
            ],
            rows,
        )
    )
    print(
        f"\n(c) requests: {steward['requests_per_second_best']:,.0f}/s best, "
        f"{steward['requests_per_second_median']:,.0f}/s median; backlog runs succeeded "
        f"{steward['runs_succeeded']:,}, skipped {steward['runs_skipped']:,} (by round "
        f"{steward['skipped_by_round']}) of {steward['runs_requested']:,}"
    )
    print(
        "(c) SQL statements per run, as CaptureQueriesContext lists them: "
        + "; ".join(
            f"{statements[where]['statements']} at {where[3:]} "
            f"({statements[where]['transaction_control_statements']} of them BEGIN/COMMIT; "
            f"{statements[where]['transactions']} transaction(s))"
            for where in ("at_request", "at_execution")
        )
        + f"; the worker, server-side: {steward['worker_sessions_per_run']} sessions and "
        f"{steward['worker_transactions_per_run']} transactions per run"
    )
    for where in ("at_request", "at_execution"):
        for sql in statements[where]["statement_list"]:
            print(f"    {where[3:]:>9}: {sql}")
    print(
        f"(c) worker log lines per run at INFO: {log_lines_per_run} (steward.jobs or naming "
        f"the run; {steward['worker_log_lines_per_run_all_loggers']} counting every line) over "
        f"{idle_runs} idle runs"
    )
    prompt_cmp, steward_cmp = comparisons["prompt_vs_stock"], comparisons["steward_vs_stock"]
    targets = {
        "prompt_vs_stock_backlog_rate": {
            "target": TARGET_RATIO,
            "actual": round(prompt_cmp["ratio_best"], 2),
            "met": prompt_cmp["ratio_best"] >= TARGET_RATIO,
        },
        "prompt_idle_latency_p50_ms": {
            "target": TARGET_PROMPT_P50_MS,
            "actual": prompt_p50,
            "met": prompt_p50 <= TARGET_PROMPT_P50_MS,
        },
        "steward_vs_stock_backlog_rate": {
            "target": TARGET_STEWARD_RATIO,
            "actual": round(steward_cmp["ratio_best"], 2),
            "met": steward_cmp["ratio_best"] >= TARGET_STEWARD_RATIO,
        },
        "steward_log_lines_per_run": {
            "target": TARGET_STEWARD_LOG_LINES,
            "actual": log_lines_per_run,
            "met": log_lines_per_run is not None and log_lines_per_run <= TARGET_STEWARD_LOG_LINES,
        },
        "steward_vs_stock_idle_latency_p50": {
            "target": TARGET_STEWARD_P50_RATIO,
            "actual": round(p50_ratio, 2),
            "met": p50_ratio <= TARGET_STEWARD_P50_RATIO,
        },
    }
    print(
        f"\n(b) vs (a) backlog rate: {prompt_cmp['ratio_best']:.2f}x best rounds, "
        f"{prompt_cmp['ratio_median']:.2f}x medians, by round {prompt_cmp['ratio_by_round']} "
        f"(target >= {TARGET_RATIO}x) {verdict(targets['prompt_vs_stock_backlog_rate']['met'])}"
    )
    print(
        f"(b) idle latency p50 {prompt_p50:.1f} ms (target <= {TARGET_PROMPT_P50_MS:g}) "
        f"{verdict(targets['prompt_idle_latency_p50_ms']['met'])}"
    )
    print(
        f"(c) runs/s vs (a) msg/s: {steward_cmp['ratio_best']:.2f}x best rounds, "
        f"{steward_cmp['ratio_median']:.2f}x medians, by round {steward_cmp['ratio_by_round']} "
        f"(target >= {TARGET_STEWARD_RATIO}x) "
        f"{verdict(targets['steward_vs_stock_backlog_rate']['met'])}"
    )
    print(
        f"(c) log lines per no-op run {log_lines_per_run} (target <= "
        f"{TARGET_STEWARD_LOG_LINES:g}) {verdict(targets['steward_log_lines_per_run']['met'])}"
    )
    print(
        f"(c) idle latency p50 {steward_p50:.1f} ms = {p50_ratio:.2f}x (a)'s {stock_p50:.1f} ms "
        f"(target <= {TARGET_STEWARD_P50_RATIO:g}x) "
        f"{verdict(targets['steward_vs_stock_idle_latency_p50']['met'])}"
    )
    floor_print(floor, steward_runs_per_second=steward["runs_per_second_best"])
    correct = all(r["correct"] for r in rounds)
    print(
        "every backlog drained, nothing dead-lettered or failed, every sample started: "
        f"{'yes' if correct else 'NO'}"
    )
    return harness.results_finish(
        NAME,
        {
            "command": harness.command_line(),
            "machine": machine,
            "parameters": {
                "messages": args.messages,
                "rounds": args.rounds,
                "samples_per_round": samples_per_round,
                "warmup_samples_per_round": WARMUP,
                "processes": 1,
                "threads": args.threads,
                "gap_ms": args.gap_ms,
                "brokers": {kind: broker_path(kind) for kind in BROKERS},
                "middleware": settings.DRAMATIQ_BROKER.get("MIDDLEWARE", []),
                "redis_url": redis_url,
                "database": database,
                "poll_seconds": POLL_SECONDS,
                "floor_runs": floor_runs,
                "steward": {
                    "jobs": jobs,
                    "worker_command": [
                        "python",
                        "-m",
                        "dramatiq",
                        "--path",
                        ".",
                        "--processes",
                        "1",
                        "--threads",
                        str(args.threads),
                        "--worker-shutdown-timeout",
                        "30000",
                        *STEWARD_WORKER_MODULES,
                    ],
                    "worker_env": STEWARD_WORKER_ENV,
                    "request": "jobs.services.job_run_request(job=..., trigger='cli', "
                    "requested_by='bench', reason=...)",
                    "drain_poll_seconds": DRAIN_POLL_SECONDS,
                    "run_poll_seconds": RUN_POLL_SECONDS,
                },
                "timed": {
                    "backlog": "(a), (b): first ack -> last ack, polling the queue's unacked "
                    "messages; (c): first JobRunAttempt.started_at -> last JobRun.finished_at, "
                    "succeeded runs counted",
                    "latency": "just before the send (the job_run_request call) -> the actor's "
                    "first line (the attempt's started_at), in the worker",
                },
            },
            "summary": summary,
            "prompt_vs_stock": comparisons["prompt_vs_stock"],
            "steward_vs_stock": comparisons["steward_vs_stock"],
            "steward_runs": {
                "measured": True,
                "runs_per_second_best": steward["runs_per_second_best"],
                "runs_per_second_median": steward["runs_per_second_median"],
                "requests_per_second_best": steward["requests_per_second_best"],
                "requests_per_second_median": steward["requests_per_second_median"],
                "runs_succeeded": steward["runs_succeeded"],
                "runs_skipped": steward["runs_skipped"],
                "latency_ms": steward["latency_ms"],
                "statements_at_request": steward["statements_at_request"],
                "statements_at_execution": steward["statements_at_execution"],
                "worker_sessions_per_run": steward["worker_sessions_per_run"],
                "worker_transactions_per_run": steward["worker_transactions_per_run"],
                "log_lines_per_run": log_lines_per_run,
            },
            "floor": floor,
            "targets": targets,
            "rounds": rounds,
            "correct": correct,
        },
        correct=correct,
        check=args.check,
        targets_met=all(target["met"] for target in targets.values()),
    )


def floor_summary(rounds: list[dict], summary: dict) -> dict:
    """(d) and (d') over the rounds, and their ratios to (a) and (c), round by round (the
    parts of one round ran back to back) and of the best and median rounds."""
    by_part = {part: [r for r in rounds if r["part"] == part] for part in (*PARTS, *FLOOR_PARTS)}
    parts = {}
    for part in FLOOR_PARTS:
        measured = by_part[part]
        rates = [r["runs_per_second"] for r in measured]
        requests = [r["requests_per_second"] for r in measured]
        executed = sum(r["executed"] for r in measured)
        totals = {
            key: sum(r["server_side"][key] for r in measured)
            for key in ("transactions", "syncs", "records", "bytes")
        }
        sql = floor_sql(part)
        parts[part] = {
            "part": PART_LETTERS[part],
            "runs_per_round": measured[0]["runs"],
            "threads": measured[0]["threads"],
            "connections": f"{measured[0]['connections']}, one per thread, opened before the "
            "timing and kept open (persistent connections)",
            "runs_per_second_best": max(rates),
            "runs_per_second_median": round(harness.percentile(rates, 50), 1),
            "runs_per_second_rounds": rates,
            "runs_per_second_in_process_rounds": [
                r["runs_per_second_in_process"] for r in measured
            ],
            "requests_per_second_best": max(requests),
            "requests_per_second_median": round(harness.percentile(requests, 50), 1),
            "statements_per_run": sql["statements_per_run"],
            "commits_per_run": sql["commits_per_run"],
            "statements_at_request": len(sql["at_request"]),
            "statements_at_execution": len(sql["at_execution"]),
            "server_side_transactions_per_execution": round(totals["transactions"] / executed, 2)
            if executed
            else None,
            "wal_syncs_per_run": round(totals["syncs"] / executed, 2) if executed else None,
            "wal_records_per_run": round(totals["records"] / executed, 2) if executed else None,
            "wal_bytes_per_run": round(totals["bytes"] / executed) if executed else None,
            "sql": {"at_request": sql["at_request"], "at_execution": sql["at_execution"]},
        }
    rates = {
        "stock": (summary["stock"], "messages_per_second"),
        "steward": (summary["steward"], "runs_per_second"),
        **{part: (parts[part], "runs_per_second") for part in FLOOR_PARTS},
    }

    def compare(numerator: str, denominator: str) -> dict:
        (top, top_key), (bottom, bottom_key) = rates[numerator], rates[denominator]
        return {
            "ratio_best": round(ratio(top[f"{top_key}_best"], bottom[f"{bottom_key}_best"]), 3),
            "ratio_median": round(
                ratio(top[f"{top_key}_median"], bottom[f"{bottom_key}_median"]), 3
            ),
            "ratio_by_round": [
                round(ratio(t[top_key], b[bottom_key]), 2)
                for t, b in zip(by_part[numerator], by_part[denominator], strict=True)
            ],
        }

    ratios = {
        "steward_vs_floor": compare("steward", "floor"),  # (c)/(d)
        "floor_vs_stock": compare("floor", "stock"),  # (d)/(a)
        "floor_cte_vs_stock": compare("floor_cte", "stock"),  # (d')/(a)
        "floor_cte_vs_floor": compare("floor_cte", "floor"),  # (d')/(d)
        "steward_vs_floor_cte": compare("steward", "floor_cte"),  # (c)/(d')
    }
    floor_ratio = ratios["floor_vs_stock"]["ratio_best"]
    cte_ratio = ratios["floor_cte_vs_stock"]["ratio_best"]
    reachable = floor_ratio >= TARGET_STEWARD_RATIO
    if reachable:
        verdict_text = (
            f"the floor of a durable run is {floor_ratio:.2f}x (a): the "
            f"{TARGET_STEWARD_RATIO:g}x target is within what this machine can do"
        )
    else:
        verdict_text = (
            f"the floor of a durable run is itself {floor_ratio:.2f}x (a): the "
            f"{TARGET_STEWARD_RATIO:g}x target is below what this machine can do"
        )
    return {
        "what": "the least database work a recorded run needs, on the same database and in the "
        "same benchmark run as (a)-(c): no Django ORM, no Dramatiq, no Steward code; psycopg 3 "
        "(its default server-side binding, statements prepared after 5 executions), every "
        "statement in autocommit as the engine runs them. At request time a jobs_jobrun row "
        "(queued), one connection; then per run, by a pool of the worker's thread count: "
        "(d) run -> running (conditional on status), attempt inserted, run -> succeeded, "
        "attempt -> succeeded, the columns (c)'s statements write; (d') the start pair and "
        "the finish pair each merged into one statement (data-modifying CTE). The job lock, "
        "reads and the broker are left out: not writes a run's record needs",
        "timed": "as (c): the first attempt's started_at -> the last run's finished_at, from "
        "the rows, succeeded runs counted (runs_per_second_in_process_rounds: the threads' "
        "own clock, first run begun -> last run done); the request phase is timed apart",
        "parts": parts,
        "ratios": ratios,
        "target": TARGET_STEWARD_RATIO,
        "floor_vs_stock_best": floor_ratio,
        "floor_cte_vs_stock_best": cte_ratio,
        "target_within_reach": reachable,
        "target_within_reach_with_merged_writes": cte_ratio >= TARGET_STEWARD_RATIO,
        "verdict": verdict_text,
    }


def floor_print(floor: dict, *, steward_runs_per_second: float) -> None:
    parts, ratios = floor["parts"], floor["ratios"]
    for part in FLOOR_PARTS:
        result = parts[part]
        print(
            f"({result['part']}) {part}: {result['runs_per_second_best']:,.0f} runs/s best, "
            f"{result['runs_per_second_median']:,.0f}/s median, by round "
            f"{result['runs_per_second_rounds']}; {result['statements_per_run']} statements = "
            f"{result['commits_per_run']} commits per run ({result['statements_at_request']} at "
            f"request, {result['statements_at_execution']} at execution; server-side "
            f"{result['server_side_transactions_per_execution']} transactions and "
            f"{result['wal_syncs_per_run']} WAL syncs per execution); {result['threads']} "
            f"threads, {result['runs_per_round']:,} runs a round"
        )
    for name, label in (
        ("steward_vs_floor", "(c)/(d)"),
        ("floor_vs_stock", "(d)/(a)"),
        ("floor_cte_vs_stock", "(d')/(a)"),
        ("floor_cte_vs_floor", "(d')/(d)"),
    ):
        compared = ratios[name]
        print(
            f"{label}: {compared['ratio_best']:.2f}x best rounds, {compared['ratio_median']:.2f}x "
            f"medians, by round {compared['ratio_by_round']}"
        )
    print(f"(c) >= {floor['target']:g}x (a) within reach at all? {floor['verdict']}")
    cte = floor["floor_cte_vs_stock_best"]
    print(
        f"(d') with {parts['floor_cte']['commits_per_run']} commits per run in place of "
        f"{parts['floor']['commits_per_run']}: {cte:.2f}x (a); merging round trips "
        + (
            "would put the target within reach of the floor"
            if floor["target_within_reach_with_merged_writes"]
            else "would not put the target within reach either"
        )
        + f" ((c) does {steward_runs_per_second:,.0f} runs/s)"
    )


def other_part(comparison: str) -> str:
    return comparison.split("_vs_", 1)[0]


def describe_round(result: dict, *, timeout: float) -> str:
    if result["part"] in FLOOR_PARTS:
        if not result["correct"]:
            return (
                f"NOT ALL EXECUTED: {result['executed']:,} of {result['runs']:,} "
                f"({result['runs_left']:,} left, errors {result['errors']})"
            )
        server = result["server_side"]
        return (
            f"{result['runs']:,} requested at {result['requests_per_second']:,.0f}/s; "
            f"{result['succeeded']:,} executed in {result['seconds']:.2f} s = "
            f"{result['runs_per_second']:,.0f} runs/s ({result['runs_per_second_in_process']:,.0f}"
            f"/s timed in process); {server['transactions_per_run']} transactions and "
            f"{server['wal_syncs_per_run']} WAL syncs per run"
        )
    latency = stats([s["latency_ms"] for s in result["latency_samples"]])
    p50 = f"idle latency p50 {latency.get('p50', float('nan')):.1f} ms"
    if result["part"] == "steward":
        if not result["drained"]:
            return f"NOT DRAINED in {timeout:g} s ({result['runs_left']:,} runs left); {p50}"
        return (
            f"{result['runs']:,} requested at {result['requests_per_second']:,.0f}/s; backlog "
            f"{result['succeeded']:,} succeeded ({result['skipped']:,} skipped) in "
            f"{result['seconds']:.2f} s = {result['runs_per_second']:,.0f} runs/s; {p50}; "
            f"{result['idle_log']['engine_lines_per_run']} log lines per run"
        )
    if not result["drained"]:
        return f"backlog NOT DRAINED in {timeout:g} s ({result['messages_left']:,} left); {p50}"
    return (
        f"backlog {result['messages_timed']:,} in {result['seconds']:.2f} s = "
        f"{result['messages_per_second']:,.0f}/s; {p50}"
    )


if __name__ == "__main__":
    sys.exit(main())
