"""Benchmark: server time and SQL queries of the operators' busiest pages.

    python -m bench.pages [--rounds 60] [--users 200] [--runs-per-job 250] [--check]

On a database with the demo data (`manage.py seed_demo --users 200`) and a run history of
`--runs-per-job` finished runs for every registered job (a few failed, partial, skipped and
dry), this renders

  /dashboard/       logged in as a staff superuser (session), the whole server-rendered page;
  /api/v1/jobs/     with the same user's DRF token, every job's overview as JSON;

through Django's test client in this process: the full request handling (middleware,
authentication, views, templates or serializers, every SQL query to the real PostgreSQL and
the queue depths from the real Redis), with no HTTP server or network in between, so the time
measured is the server's.

Each round renders each page three times, interleaved: as shipped ("after": next run times
from cronsim, one firing to the next; every job's runs read in one statement); with the jobs'
overviews read as before ("before", kept in this file: next run times from periodiq's
`next_valid_date` over windows of a day and more, enumerating every slot of the window, so
that `* * * * *` listed 1,440 slots to find three; and four queries a job and one a
schedule); and as before but
with cronsim's next run times ("cronsim only"). The templates are the shipped ones in all.
The SQL queries of each page are counted in a separate request (counting wraps every query,
so it is kept out of the timed rounds).

Server time is the wall clock from request to response; the CPU time of this process is
reported beside it (the wall clock less the waits for PostgreSQL and Redis, and for the CPU
on a machine busy with other work: compare the load averages printed).

Target: median server time under 50 ms per page after. Writes bench/results/pages.json.
"""

from __future__ import annotations

import argparse
import functools
import io
import logging
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from bench import harness

NAME = "pages"
PAGES = ("/dashboard/", "/api/v1/jobs/")
VARIANTS = ("before", "cronsim only", "after")
TARGET_MEDIAN_MS = 50.0
WARMUP = 5
BENCH_USER = "bench-pages-operator"


# --- The previous next-slot computation, kept as the baseline -------------------------------


def old_slots_between(
    spec: str, start: datetime, end: datetime, zone: str = "UTC"
) -> Iterator[datetime]:
    """jobs.cron.slots_between before cronsim: periodiq's next_valid_date, minute by minute
    through a spec that fires every minute."""
    import pendulum
    from periodiq import CronSpec

    from jobs.cron import validate_cron

    def local(moment: datetime) -> pendulum.DateTime:
        return pendulum.instance(moment).in_timezone(zone)

    cron = CronSpec.parse(validate_cron(spec))
    moment = local(start)
    limit = local(end)
    while True:
        moment = cron.next_valid_date(moment)
        if moment > limit:
            return
        if cron.validate(moment):
            yield datetime.fromtimestamp(int(moment.timestamp()), tz=UTC)


def old_next_slots(spec: str, after: datetime, count: int, zone: str = "UTC") -> list[datetime]:
    """jobs.cron.next_slots before cronsim: every slot of a day (then 2, 4, ... days) listed
    to keep the first `count`."""
    found: list[datetime] = []
    window = timedelta(days=1)
    start = after
    while len(found) < count and window <= timedelta(days=800):
        found.extend(old_slots_between(spec, start, start + window, zone))
        start, window = start + window, window * 2
    return found[:count]


def old_job_overviews(*, now: datetime | None = None, next_slots: Callable | None = None) -> list:
    """jobs.selectors.job_overviews before its single statements: per job, its latest run, its
    latest finished run and its stats sample in a query each, (what the dashboard view then
    read itself) its 30 latest finished runs for the chart, as full rows, and its schedules;
    per schedule, its latest run: four queries a job and one a schedule."""
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    import jobs.schedule_selectors as schedule_selectors
    import jobs.selectors as selectors
    from jobs.cron import cron_in_words
    from jobs.models import FINISHED_STATUSES, JobRun, JobState, Schedule
    from jobs.registry import all_jobs

    now = now or timezone.now()
    next_slots = next_slots or old_next_slots
    states = JobState.objects.in_bulk()
    overviews = []
    for spec in all_jobs():
        top_level = JobRun.objects.filter(job=spec.name, parent__isnull=True).order_by("-id")
        chart = selectors.job_recent_finished_runs(job=spec.name, limit=30, dry_run=False)
        state = states.get(spec.name) or JobState(job=spec.name)
        schedules = [
            schedule_selectors.ScheduleOverview(
                schedule=schedule,
                in_words=cron_in_words(schedule.cron),
                next_runs=[
                    schedule_selectors.NextRun(
                        utc=slot, local=slot.astimezone(ZoneInfo(schedule.timezone))
                    )
                    for slot in next_slots(schedule.cron, now, 3, schedule.timezone)
                ],
                paused_reason=schedule_selectors._schedule_paused_reason(schedule, state),
                last_run=JobRun.objects.filter(schedule=schedule).order_by("-id").first(),
            )
            for schedule in Schedule.objects.filter(job=spec.name).order_by("name")
        ]
        overviews.append(
            selectors.JobOverview(
                name=spec.name,
                description=spec.description,
                queue=spec.queue,
                next_runs=selectors._merged_next_runs(schedules),
                schedules=schedules,
                state=state,
                last_run=top_level.first(),
                last_finished_run=top_level.filter(
                    status__in=FINISHED_STATUSES, dry_run=False
                ).first(),
                stats=selectors.job_stats(job=spec.name),
                recent_finished=tuple(
                    selectors.RunPoint(run.pk, run.status, run.duration_ms) for run in chart
                ),
            )
        )
    return overviews


@contextmanager
def variant(name: str):
    """The pages as shipped ("after"); reading the jobs' overviews as before, with the old
    next-slot search and four queries a job and one a schedule ("before"); or as before but
    with cronsim's next slots ("cronsim only": what the cron library alone changes)."""
    import jobs.api.views.jobs
    import jobs.dashboard.views
    from jobs.cron import next_slots

    modules = (jobs.api.views.jobs, jobs.dashboard.views)
    shipped = [module.job_overviews for module in modules]
    replacement = {
        "before": old_job_overviews,
        "cronsim only": functools.partial(old_job_overviews, next_slots=next_slots),
    }.get(name)
    if replacement is not None:
        for module in modules:
            module.job_overviews = replacement
    try:
        yield
    finally:
        for module, overviews in zip(modules, shipped, strict=True):
            module.job_overviews = overviews


# --- Data -------------------------------------------------------------------------------------


def run_history_create(*, runs_per_job: int, seed: int = 7) -> int:
    """`runs_per_job` finished top-level runs of every registered job, one every 5 minutes,
    the jobs' runs interleaved, one attempt each: mostly succeeded, some failed (with a
    traceback), partial, skipped and dry."""
    from django.utils import timezone

    from jobs.models import AttemptStatus, JobRun, JobRunAttempt, RunStatus, Trigger
    from jobs.registry import all_jobs

    rng = random.Random(seed)
    now = timezone.now()
    runs: list[JobRun] = []
    for spec in all_jobs():
        for index in range(runs_per_job):
            finished = now - timedelta(minutes=5 * (runs_per_job - index))
            roll = rng.random()
            status = (
                RunStatus.FAILED
                if roll < 0.03
                else RunStatus.PARTIAL
                if roll < 0.06
                else RunStatus.SKIPPED
                if roll < 0.10
                else RunStatus.SUCCEEDED
            )
            duration = None if status == RunStatus.SKIPPED else rng.randint(20, 4_000)
            started = finished - timedelta(milliseconds=duration or 0)
            dry_run = rng.random() < 0.02
            runs.append(
                JobRun(
                    job=spec.name,
                    trigger=Trigger.ADMIN if dry_run else Trigger.SCHEDULE,
                    requested_by="bench" if dry_run else "scheduler",
                    as_of=started,
                    dry_run=dry_run,
                    status=status,
                    started_at=None if status == RunStatus.SKIPPED else started,
                    finished_at=finished,
                    duration_ms=duration,
                    attempt_count=0 if status == RunStatus.SKIPPED else 1,
                    summary={"dry_run": True} if dry_run else {"rows": rng.randint(0, 5_000)},
                    error="RuntimeError: bench" if status == RunStatus.FAILED else "",
                    traceback="Traceback\nRuntimeError: bench"
                    if status == RunStatus.FAILED
                    else "",
                )
            )
    runs.sort(key=lambda run: run.finished_at)  # ids interleave across jobs, as in production
    JobRun.objects.bulk_create(runs, batch_size=2_000)
    attempts = [
        JobRunAttempt(
            run=run,
            number=1,
            status=AttemptStatus.FAILED
            if run.status == RunStatus.FAILED
            else AttemptStatus.SUCCEEDED,
            started_at=run.started_at,
            finished_at=run.finished_at,
            worker="bench:1",
            error=run.error,
            traceback=run.traceback,
        )
        for run in runs
        if run.started_at is not None
    ]
    JobRunAttempt.objects.bulk_create(attempts, batch_size=2_000)
    return len(runs)


def clients() -> dict[str, object]:
    """A session client for the dashboard and a token client for the API, one staff user."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from rest_framework.authtoken.models import Token

    user, _ = get_user_model().objects.get_or_create(
        username=BENCH_USER, defaults={"is_staff": True, "is_superuser": True}
    )
    session = Client()
    session.force_login(user)
    token, _ = Token.objects.get_or_create(user=user)
    return {
        "/dashboard/": session,
        "/api/v1/jobs/": Client(HTTP_AUTHORIZATION=f"Token {token.key}"),
    }


# --- Measurement ------------------------------------------------------------------------------


def render(client, path: str) -> tuple[float, float]:
    """Milliseconds of server time for one request of `path`: wall clock, and this process's
    CPU time (the wall clock less the waits: for PostgreSQL, Redis, and a busy machine's
    other processes)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    response = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    cpu = (time.process_time() - cpu_started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{path} answered {response.status_code}: {response.content[:300]}")
    return elapsed, cpu


def queries_of(client, path: str) -> tuple[int, list[str]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        render(client, path)
    return len(captured), [query["sql"][:200] for query in captured.captured_queries]


def next_slots_per_schedule(call: Callable, *, repeat: int = 20) -> dict[str, float]:
    """Milliseconds per call of `call(cron, after, 3, zone)` for each schedule, each call
    computing its answer."""
    from django.utils import timezone

    from jobs.cron import _next_slots
    from jobs.models import Schedule

    now = timezone.now()
    timings = {}
    for schedule in Schedule.objects.order_by("job", "name"):
        started = time.perf_counter()
        for minute in range(repeat):
            _next_slots.cache_clear()  # next_slots keeps its answers per minute
            call(schedule.cron, now + timedelta(minutes=minute), 3, schedule.timezone)
        timings[f"{schedule.name} ({schedule.cron}, {schedule.timezone})"] = round(
            (time.perf_counter() - started) * 1000 / repeat, 3
        )
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pages",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=60, help="timed requests per page (60)")
    parser.add_argument("--users", type=int, default=200, help="demo users (200)")
    parser.add_argument(
        "--runs-per-job", type=int, default=250, help="finished runs of every job (250)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    database_url, redis_url = harness.bench_urls()
    harness.django_setup()
    logging.getLogger("axes").setLevel(logging.WARNING)  # a line per login otherwise
    from django.core.management import call_command

    from jobs.registry import all_jobs

    database = f"{harness.database_name(database_url)}_pages"
    machine = harness.machine_info(database_url=database_url, redis_url=redis_url)
    jobs = [spec.name for spec in all_jobs()]
    print(f"Machine: {harness.describe_machine(machine)}")
    print(
        f"Render {', '.join(PAGES)} {args.rounds} times each, before and after, interleaved; "
        f"{len(jobs)} jobs, demo data for {args.users} users, {args.runs_per_job} runs per job; "
        f"Redis {redis_url}",
        flush=True,
    )
    harness.database_create(database_url, database)
    harness.redis_flush(redis_url)
    load_before = harness.load_average()
    try:
        harness.django_use_database(database, migrate=True)
        call_command("seed_demo", users=args.users, stdout=io.StringIO())
        runs = run_history_create(runs_per_job=args.runs_per_job)
        harness.vacuum_analyze()
        by_page = clients()
        timings: dict[str, dict[str, list[float]]] = {
            page: {name: [] for name in VARIANTS} for page in PAGES
        }
        cpu: dict[str, dict[str, list[float]]] = {
            page: {name: [] for name in VARIANTS} for page in PAGES
        }
        queries: dict[str, dict[str, int]] = {page: {} for page in PAGES}
        statements: dict[str, list[str]] = {}
        for page in PAGES:
            for name in VARIANTS:
                with variant(name):
                    for _ in range(WARMUP):
                        render(by_page[page], page)
                    queries[page][name], listed = queries_of(by_page[page], page)
                    if name == "after":
                        statements[page] = listed
        # Interleave the variants and pages, so a burst of load elsewhere hits all alike.
        for index in range(args.rounds):
            for page in PAGES:
                for name in VARIANTS:
                    with variant(name):
                        elapsed, used = render(by_page[page], page)
                    timings[page][name].append(elapsed)
                    cpu[page][name].append(used)
            if (index + 1) % 20 == 0:
                print(f"  {index + 1} rounds", flush=True)
        from jobs.cron import next_slots

        per_schedule = {
            "before": next_slots_per_schedule(old_next_slots, repeat=3),
            "after": next_slots_per_schedule(next_slots),
        }
    finally:
        harness.django_release_database()
        if not args.keep:
            harness.database_drop(database_url, database)
    load_after = harness.load_average()

    summary: dict[str, dict] = {}
    rows = []
    for page in PAGES:
        stats = {
            name: harness.distribution(timings[page][name], (50, 95, 100), digits=2)
            for name in VARIANTS
        }
        cpu_stats = {
            name: harness.distribution(cpu[page][name], (50, 95, 100), digits=2)
            for name in VARIANTS
        }
        ratio = stats["before"]["p50"] / stats["after"]["p50"] if stats["after"]["p50"] else None
        summary[page] = {
            "server_ms": stats,
            "process_cpu_ms": cpu_stats,
            "queries": queries[page],
            "median_speedup": round(ratio, 1) if ratio else None,
        }
        for name in VARIANTS:
            rows.append(
                [
                    page,
                    name,
                    len(timings[page][name]),
                    round(stats[name]["p50"], 1),
                    round(stats[name]["p95"], 1),
                    round(stats[name]["max"], 1),
                    round(cpu_stats[name]["p50"], 1),
                    queries[page][name],
                    f"{stats['before']['p50'] / stats[name]['p50']:.1f}x"
                    if name != "before" and stats[name]["p50"]
                    else "",
                ]
            )
    print()
    print(
        harness.table(
            [
                "page",
                "overviews",
                "requests",
                "p50 ms",
                "p95 ms",
                "max ms",
                "CPU p50 ms",
                "SQL queries",
                "faster",
            ],
            rows,
        )
    )
    print()
    print(
        harness.table(
            ["schedule (cron, zone)", "next_slots before ms", "after ms"],
            [
                [name, per_schedule["before"][name], per_schedule["after"][name]]
                for name in per_schedule["after"]
            ],
        )
    )
    targets = {}
    for page in PAGES:
        median = summary[page]["server_ms"]["after"]["p50"]
        met = median < TARGET_MEDIAN_MS
        targets[page] = {"target": TARGET_MEDIAN_MS, "actual": median, "met": met}
        print(
            f"{page}: median {median:.1f} ms after (target < {TARGET_MEDIAN_MS:g}) "
            f"{'met' if met else 'MISSED'}; {queries[page]['after']} SQL queries"
        )
    print(f"load average before {load_before}, after {load_after}")
    return harness.results_finish(
        NAME,
        {
            "command": harness.command_line(),
            "machine": machine,
            "parameters": {
                "rounds": args.rounds,
                "warmup_requests": WARMUP,
                "users": args.users,
                "runs_per_job": args.runs_per_job,
                "jobs": jobs,
                "runs": runs,
                "redis_url": redis_url,
                "timed": "Django test client in-process: request in -> response out",
                "before": "job_overviews swapped for the previous one: enumerating next_slots, "
                "four queries a job and one a schedule",
            },
            "load_average_before": load_before,
            "load_average_after": load_after,
            "summary": summary,
            "targets": targets,
            "next_slots_ms_per_call": per_schedule,
            "queries_after": statements,
            "samples_ms": timings,
            "samples_process_cpu_ms": cpu,
            "correct": True,
        },
        correct=True,
        check=args.check,
        targets_met=all(target["met"] for target in targets.values()),
    )


if __name__ == "__main__":
    sys.exit(main())
