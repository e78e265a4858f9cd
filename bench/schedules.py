"""Benchmark: one minute tick of the scheduler over thousands of schedules on PostgreSQL.

    python -m bench.schedules [--sizes 10000 5000 2500 1000] [--repeat 5]
                              [--history-per-schedule 10] [--broker redis|stub] [--check]

Builds `max(--sizes)` enabled schedules, each its own row (inserted in bulk, in the form the
schedule service stores; the registry's default schedules are removed first): mixed crons (10 %
every minute, 30 % hourly, 45 % daily, 15 % weekly, at minutes 0, 15, 30 or 45 and any hour and
day of the week) in 20 IANA time zones (whole, half and three-quarter hour offsets, both
hemispheres), half of them of a job with per-entity parameters (`user_ids`, `region`; its runs
take a lock scoped to them) and half of a job without. Each schedule has
`--history-per-schedule` earlier runs, so the runs' table and its `(schedule, slot)` index are
not empty.

One tick is `jobs.scheduling.schedules_tick(now=...)` for Monday 2026-12-07 09:00 UTC (the top
of an hour: every-minute, most hourly and some daily schedules fire), as periodiq calls it, in
the steady state: every schedule's next slot as a scheduler ticking until the minute before left
it. It reads the schedules whose next slot has come (by an index), records their runs in one
INSERT and sends their messages in one Redis pipeline (the tick runs in autocommit, so they go
as soon as the runs are saved), then moves each one's next slot on. Before each tick
the minute's runs are deleted, the schedules put back a minute and the tables vacuumed. Timed:
the call, wall clock and this process's CPU time, `--repeat` times per size after one untimed
warm-up; then, in separate ticks, its peak Python memory (tracemalloc, which slows Python down,
so it is never timed) and where the time goes (see `tick_phases`). Sizes are measured largest
first, the smaller ones by deleting schedules (and their runs) from the end.

Each tick is checked: it records one run per schedule whose cron matches the minute's wall
clock in its zone (computed here without cronsim), sends one message per run, and a repeated
tick of the same minute records nothing.

The broker is the real Redis one of REDIS_URL by default (`--broker stub`: Dramatiq's
StubBroker, in memory, to leave Redis out).

Target: a tick over 10,000 schedules under 1 s, growing linearly. Writes
bench/results/schedules.json.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bench import harness

NAME = "schedules"
TARGET_SECONDS = 1.0
TARGET_SIZE = 10_000
TICK = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # a Monday, at the top of the hour
SEED = 15
ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Moscow",
    "Africa/Lagos",
    "Africa/Nairobi",
    "Asia/Tehran",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Adelaide",
    "Australia/Sydney",
    "Pacific/Auckland",
    "America/St_Johns",
    "America/Sao_Paulo",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
)
# Share of the schedules of each shape.
SHAPES = (("every minute", 0.10), ("hourly", 0.30), ("daily", 0.45), ("weekly", 0.15))
MINUTES = (0, 15, 30, 45)
REGIONS = ("eu", "asia", "americas", "africa", "oceania")
TARGETED_JOB = "bench_regional_reminders"
SWEEP_JOB = "bench_sweep"


# --- The jobs and the schedules ---------------------------------------------------------------


def jobs_register() -> None:
    """The two jobs the schedules run (this process only records their runs, never runs them):
    one taking per-entity parameters and claiming its rows concurrently, one taking none."""
    from rest_framework import serializers

    from jobs import registry
    from jobs.params import IdListField
    from jobs.registry import JobSpec

    class RegionalParams(serializers.Serializer):
        user_ids = IdListField(required=False)
        region = serializers.ChoiceField(choices=REGIONS)

    registry.register(
        JobSpec(
            name=TARGETED_JOB,
            body=lambda context: {},
            cron="",
            description="Per-region reminders of the schedules benchmark.",
            params=RegionalParams,
            concurrent_targets=True,
        )
    )
    registry.register(
        JobSpec(
            name=SWEEP_JOB,
            body=lambda context: {},
            cron="",
            description="A sweep of the schedules benchmark.",
        )
    )


def plan(count: int, *, seed: int = SEED) -> list[dict]:
    """`count` schedules: each one's fields, and its shape's numbers for the independent check
    of which of them fire at TICK."""
    rng = random.Random(seed)
    shapes = [name for name, _ in SHAPES]
    weights = [share for _, share in SHAPES]
    planned = []
    for index in range(count):
        shape = rng.choices(shapes, weights)[0]
        minute, hour, weekday = rng.choice(MINUTES), rng.randrange(24), rng.randrange(7)
        cron = {
            "every minute": "* * * * *",
            "hourly": f"{minute} * * * *",
            "daily": f"{minute} {hour} * * *",
            "weekly": f"{minute} {hour} * * {weekday}",
        }[shape]
        targeted = index % 2 == 0
        params = {}
        if targeted:
            params = {"region": rng.choice(REGIONS)}
            if rng.random() < 0.5:
                params["user_ids"] = sorted(rng.sample(range(1, 1_000_000), rng.randint(1, 20)))
        planned.append(
            {
                "name": f"bench-{index:05d}",
                "job": TARGETED_JOB if targeted else SWEEP_JOB,
                "cron": cron,
                "timezone": rng.choice(ZONES),
                "params": params,
                "shape": shape,
                "minute": minute,
                "hour": hour,
                "weekday": weekday,
            }
        )
    return planned


def fires_at(entry: dict, moment: datetime) -> bool:
    """Whether the planned schedule fires at `moment`, from its wall clock there (Sunday = 0)."""
    wall = moment.astimezone(ZoneInfo(entry["timezone"]))
    shape = entry["shape"]
    if shape == "every minute":
        return True
    if wall.minute != entry["minute"]:
        return False
    if shape == "hourly":
        return True
    if wall.hour != entry["hour"]:
        return False
    return shape == "daily" or wall.isoweekday() % 7 == entry["weekday"]


def schedules_create(planned: list[dict], *, history_per_schedule: int) -> None:
    """The schedule rows, instead of the registry's defaults (created a day before the tick,
    next slot the first after the minute before it), and their earlier runs, in bulk."""
    from django.db import connection

    from jobs.models import JobRun, RunStatus, Schedule, Trigger

    fields = ("name", "job", "cron", "timezone", "params")
    Schedule.objects.all().delete()
    Schedule.objects.bulk_create(
        [Schedule(**{field: entry[field] for field in fields}) for entry in planned],
        batch_size=2_000,
    )
    with connection.cursor() as cursor:
        # auto_now_add gave every row this moment; the tick needs them older than its minute.
        cursor.execute("UPDATE jobs_schedule SET created_at = %s", [TICK - timedelta(days=1)])
    _next_slots_after_the_minute_before()
    schedules = list(Schedule.objects.order_by("pk").values_list("pk", "job", "params"))
    for first in range(0, len(schedules), 1_000):
        runs = []
        for pk, job, params in schedules[first : first + 1_000]:
            for back in range(1, history_per_schedule + 1):
                slot = TICK - timedelta(hours=back)
                runs.append(
                    JobRun(
                        job=job,
                        trigger=Trigger.SCHEDULE,
                        requested_by="scheduler",
                        reason="bench history",
                        as_of=slot,
                        params=params,
                        slot=slot,
                        schedule_id=pk,
                        status=RunStatus.SUCCEEDED,
                        started_at=slot,
                        finished_at=slot + timedelta(seconds=1),
                        duration_ms=1_000,
                        attempt_count=1,
                    )
                )
        JobRun.objects.bulk_create(runs, batch_size=5_000)


def _next_slots_after_the_minute_before() -> None:
    """Every schedule's next slot as a scheduler ticking until the minute before left it."""
    from jobs.cron import next_slot
    from jobs.models import Schedule

    for cron, zone in Schedule.objects.values_list("cron", "timezone").distinct():
        Schedule.objects.filter(cron=cron, timezone=zone).update(
            next_slot=next_slot(cron, TICK - timedelta(minutes=1), zone)
        )


def schedules_keep(count: int) -> None:
    """Keep the first `count` schedules (and their runs), deleting the rest."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM jobs_schedule ORDER BY id OFFSET %s LIMIT 1", [count])
        row = cursor.fetchone()
        if row is None:
            return
        cursor.execute("DELETE FROM jobs_jobrun WHERE schedule_id >= %s", [row[0]])
        cursor.execute("DELETE FROM jobs_schedule WHERE id >= %s", [row[0]])


# --- One tick ---------------------------------------------------------------------------------


class Broker:
    """The broker the tick sends to, emptied before each tick and counted after."""

    def __init__(self, kind: str, redis_url: str) -> None:
        import dramatiq
        from dramatiq.brokers.stub import StubBroker

        self.kind = kind
        self.redis_url = redis_url
        if kind == "stub":
            dramatiq.set_broker(StubBroker())
        self.broker = dramatiq.get_broker()

    def empty(self) -> None:
        if self.kind == "stub":
            self.broker.flush_all()
        else:
            harness.redis_flush(self.redis_url)

    def messages(self) -> int:
        queues = self.broker.get_declared_queues()
        if self.kind == "stub":
            return sum(self.broker.queues[queue].qsize() for queue in queues)
        return sum(self.broker.client.llen(f"{self.broker.namespace}:{queue}") for queue in queues)


def tick_reset(broker: Broker) -> None:
    """Back to the minute before the tick: its runs deleted, every schedule's next slot the
    first after the minute before, the tables vacuumed, the broker empty."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM jobs_jobrun WHERE slot = %s", [TICK])
    _next_slots_after_the_minute_before()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE jobs_schedule")
        cursor.execute("VACUUM ANALYZE jobs_jobrun")
    broker.empty()


def tick_timed(broker: Broker) -> tuple[float, float, object]:
    """One tick's wall clock and this process's CPU time (less stretched by the machine's
    other work than the wall clock; PostgreSQL's and Redis's own work left out), in seconds,
    and its report."""
    from jobs.scheduling import schedules_tick

    tick_reset(broker)
    started, cpu_started = time.perf_counter(), time.process_time()
    report = schedules_tick(now=TICK)
    return time.perf_counter() - started, time.process_time() - cpu_started, report


def tick_peak_memory(broker: Broker) -> int:
    """Bytes of Python memory the tick held at its peak, over what was held before it."""
    from jobs.scheduling import schedules_tick

    tick_reset(broker)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        schedules_tick(now=TICK)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


@contextlib.contextmanager
def timed(module, name: str, totals: Counter):
    """`module.name` replaced, while the block runs, by a wrapper adding its seconds to
    `totals[name]`."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - started

    setattr(module, name, wrapper)
    try:
        yield
    finally:
        setattr(module, name, original)


def tick_phases(broker: Broker) -> dict:
    """Where one tick's time goes, from wrappers around the engine's functions and Django's
    timing of each SQL statement (driver included):

    - cron: `latest_slot` (cronsim, for overdue schedules; uncached calls only),
    - run objects: `new_run`,
    - runs recorded: `scheduled_runs_record` less its sending (the check for slots already
      recorded and the one INSERT, with Django compiling it),
    - messages sent: `job_runs_send` (sent at once: the tick runs in autocommit),
    - next slots written: the UPDATE statements' own time,
    - reading and looping: the rest (the due schedules fetched through a server-side cursor
      and made model instances, the loop, building the UPDATE's id lists).
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    import jobs.scheduling
    import jobs.services

    totals: Counter = Counter()
    tick_reset(broker)
    with (
        timed(jobs.scheduling, "latest_slot", totals),
        timed(jobs.scheduling, "new_run", totals),
        timed(jobs.scheduling, "scheduled_runs_record", totals),
        timed(jobs.services, "job_runs_send", totals),
        CaptureQueriesContext(connection) as queries,
    ):
        started = time.perf_counter()
        jobs.scheduling.schedules_tick(now=TICK)
        total = time.perf_counter() - started
    statements = [
        {"sql": query["sql"][:120], "ms": round(float(query["time"]) * 1000, 1)}
        for query in queries.captured_queries
    ]
    updates = sum(s["ms"] for s in statements if s["sql"].startswith("UPDATE")) / 1000
    phases = {
        "cron": totals["latest_slot"],
        "run objects": totals["new_run"],
        "runs recorded": totals["scheduled_runs_record"] - totals["job_runs_send"],
        "messages sent": totals["job_runs_send"],
        "next slots written": updates,
    }
    phases["reading and looping"] = total - sum(phases.values())
    return {
        "total_ms": round(total * 1000, 1),
        "phases_ms": {name: round(seconds * 1000, 1) for name, seconds in phases.items()},
        "statements": statements,
    }


def tick_check(planned: list[dict], report, broker: Broker) -> dict:
    """The runs the tick recorded against the schedules whose wall clock matches, and the
    messages it sent; then a repeated tick of the minute, which must record nothing."""
    from jobs.models import JobRun, RunStatus
    from jobs.scheduling import schedules_tick

    expected = {entry["name"] for entry in planned if fires_at(entry, TICK)}
    runs = JobRun.objects.filter(slot=TICK).select_related("schedule")
    recorded = Counter(run.schedule.name for run in runs)
    statuses = Counter(run.status for run in runs)
    messages = broker.messages()
    again = schedules_tick(now=TICK)
    checks = {
        "expected_runs": len(expected),
        "recorded_runs": len(report.recorded),
        "one_run_per_due_schedule": set(recorded) == expected
        and all(count == 1 for count in recorded.values()),
        "all_queued": statuses == {RunStatus.QUEUED: len(expected)},
        "messages_sent": messages,
        "one_message_per_run": messages == len(expected),
        "repeated_tick_recorded": len(again.recorded),
    }
    checks["correct"] = (
        checks["one_run_per_due_schedule"]
        and checks["all_queued"]
        and checks["one_message_per_run"]
        and checks["recorded_runs"] == len(expected)
        and checks["repeated_tick_recorded"] == 0
    )
    return checks


def measure(size: int, planned: list[dict], *, repeat: int, broker: Broker) -> dict:
    seconds, cpu, report = [], [], None
    for _ in range(repeat):
        elapsed, used, report = tick_timed(broker)
        seconds.append(elapsed)
        cpu.append(used)
    checks = tick_check(planned[:size], report, broker)
    peak = tick_peak_memory(broker)
    phases = tick_phases(broker)
    median = statistics.median(seconds)
    return {
        "schedules": size,
        "evaluated": report.evaluated,
        "runs_recorded": len(report.recorded),
        "tick_ms": harness.distribution([s * 1000 for s in seconds], (50, 100), digits=1),
        "process_cpu_ms": harness.distribution([s * 1000 for s in cpu], (50, 100), digits=1),
        "ms_per_1000_schedules": round(median * 1000 / (size / 1000), 1),
        "peak_memory_mib": round(peak / 2**20, 1),
        "where_the_time_goes": phases,
        "checks": checks,
    }


def linear_fit(points: list[tuple[int, float]]) -> dict | None:
    """Least squares ms = fixed + per_1000 * (schedules / 1000), and how well it fits; None
    for fewer than two sizes."""
    if len(points) < 2:
        return None
    xs = [size / 1000 for size, _ in points]
    ys = [ms for _, ms in points]
    slope, intercept = statistics.linear_regression(xs, ys)
    correlation = statistics.correlation(xs, ys) if len(points) > 2 else 1.0
    return {
        "fixed_ms": round(intercept, 1),
        "ms_per_1000": round(slope, 1),
        "r_squared": round(correlation**2, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.schedules",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[10_000, 5_000, 2_500, 1_000],
        help="schedule counts to measure (10000 5000 2500 1000)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed ticks per size (5)")
    parser.add_argument(
        "--history-per-schedule", type=int, default=10, help="earlier runs of each schedule (10)"
    )
    parser.add_argument(
        "--broker",
        choices=("redis", "stub"),
        default="redis",
        help="where the tick sends: the real Redis of REDIS_URL (default) or Dramatiq's "
        "StubBroker in memory",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    if min(args.sizes) < 1 or args.repeat < 1:
        parser.error("--sizes and --repeat must be at least 1")
    sizes = sorted(set(args.sizes), reverse=True)

    database_url, redis_url = harness.bench_urls()
    harness.django_setup()
    jobs_register()
    database = f"{harness.database_name(database_url)}_schedules"
    machine = harness.machine_info(database_url=database_url, redis_url=redis_url)
    print(f"Machine: {harness.describe_machine(machine)}")
    broker = Broker(args.broker, redis_url)
    print(
        f"One tick at {TICK.isoformat()} over {', '.join(f'{size:,}' for size in sizes)} "
        f"schedules, {args.repeat} timed each; {args.history_per_schedule} earlier runs per "
        f"schedule; broker: {'Redis ' + redis_url if args.broker == 'redis' else 'StubBroker'}",
        flush=True,
    )
    planned = plan(sizes[0])
    harness.database_create(database_url, database)
    load_before = harness.load_average()
    results = []
    try:
        harness.django_use_database(database, migrate=True)
        started = time.perf_counter()
        schedules_create(planned, history_per_schedule=args.history_per_schedule)
        print(f"  created in {time.perf_counter() - started:.1f} s", flush=True)
        tick_timed(broker)  # warm-up: connections, statement compilation, imports
        for size in sizes:
            schedules_keep(size)
            result = measure(size, planned, repeat=args.repeat, broker=broker)
            results.append(result)
            print(
                f"  {size:,} schedules: median {result['tick_ms']['p50']} ms, "
                f"{result['runs_recorded']:,} runs, peak {result['peak_memory_mib']} MiB",
                flush=True,
            )
        broker.empty()
    finally:
        harness.django_release_database()
        if not args.keep:
            harness.database_drop(database_url, database)
    load_after = harness.load_average()

    print()
    print(
        harness.table(
            [
                "schedules",
                "runs",
                "tick p50 ms",
                "min ms",
                "max ms",
                "ms / 1,000",
                "CPU p50 ms",
                "peak MiB",
            ],
            [
                [
                    result["schedules"],
                    result["runs_recorded"],
                    result["tick_ms"]["p50"],
                    result["tick_ms"]["min"],
                    result["tick_ms"]["max"],
                    result["ms_per_1000_schedules"],
                    result["process_cpu_ms"]["p50"],
                    result["peak_memory_mib"],
                ]
                for result in results
            ],
        )
    )
    phase_names = list(results[0]["where_the_time_goes"]["phases_ms"]) if results else []
    print("\nWhere the time goes (ms, one instrumented tick per size):")
    print(
        harness.table(
            ["schedules", "total", *phase_names],
            [
                [
                    result["schedules"],
                    result["where_the_time_goes"]["total_ms"],
                    *result["where_the_time_goes"]["phases_ms"].values(),
                ]
                for result in results
            ],
        )
    )
    fit = linear_fit([(result["schedules"], result["tick_ms"]["p50"]) for result in results])
    if fit is not None:
        print(
            f"\nfit: {fit['fixed_ms']} ms + {fit['ms_per_1000']} ms per 1,000 schedules "
            f"(r² {fit['r_squared']})"
        )
    at_target = next((r for r in results if r["schedules"] == TARGET_SIZE), None)
    actual = at_target["tick_ms"]["p50"] / 1000 if at_target else None
    met = actual is not None and actual < TARGET_SECONDS
    print(
        f"tick over {TARGET_SIZE:,} schedules: "
        + (f"{actual:.3f} s" if actual is not None else "not measured")
        + f" (target < {TARGET_SECONDS:g} s) {'met' if met else 'MISSED'}"
    )
    correct = bool(results) and all(result["checks"]["correct"] for result in results)
    print(
        f"every tick recorded and sent one run per due schedule, and nothing when repeated: "
        f"{'yes' if correct else 'NO'}; load average before {load_before}, after {load_after}"
    )
    return harness.results_finish(
        NAME,
        {
            "command": harness.command_line(),
            "machine": machine,
            "parameters": {
                "sizes": sizes,
                "repeat": args.repeat,
                "history_per_schedule": args.history_per_schedule,
                "tick": TICK.isoformat(),
                "shapes": dict(SHAPES),
                "minutes": MINUTES,
                "time_zones": ZONES,
                "jobs": {TARGETED_JOB: "params, concurrent targets", SWEEP_JOB: "no params"},
                "broker": "Redis " + redis_url if args.broker == "redis" else "StubBroker",
                "timed": "schedules_tick(now=TICK) in this process, wall clock, steady state",
                "peak_memory": "tracemalloc peak during a separate tick, over what was held "
                "before it",
            },
            "shape_counts": dict(Counter(entry["shape"] for entry in planned)),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "results": results,
            "linear_fit": fit,
            "targets": {
                "tick_s_at_10000": {"target": TARGET_SECONDS, "actual": actual, "met": met}
            },
            "correct": correct,
        },
        correct=correct,
        check=args.check,
        targets_met=met,
    )


if __name__ == "__main__":
    sys.exit(main())
