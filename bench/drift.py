"""Benchmark: scheduler drift, from a schedule slot until its run is `running`.

    python -m bench.drift [--minutes 10] [--jobs expire_matches cycle_reminders ...]
                          [--users 200] [--threads 8] [--check]

Starts one scheduler (`manage.py runscheduler`) and one worker (`manage.py rundramatiq
--processes 1 --threads 8`) on the real Redis broker, against a small demo dataset
(`demo_seed`), with the schedules of every job of `--jobs` set to `* * * * *` in the bench
database through the schedule service, as an operator would (a job without one gets one):
several jobs fire each minute, all in the same second, so one minute gives several samples and
they compete for the worker as they would in production.

For every slot that began after the scheduler started (periodiq's tick for the minute it starts
in arrives up to a minute late by design and is left out) and before it stopped: drift = the
first attempt's `started_at` - the slot. It is split into the tick (slot -> JobRun recorded by
the tick actor) and the hand-off (recorded -> running). Slots without a run are reported as
missed.

Target: p95 <= 1 s. Writes bench/results/drift.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from datetime import timedelta

from bench import harness

NAME = "drift"
TARGET_P95_SECONDS = 1.0
DEFAULT_JOBS = [
    "expire_matches",
    "cycle_reminders",
    "monitor_business_lag",
    "reconcile_ledger",
    "deliver_notifications",
    "release_escrows",
]
EVERY_MINUTE = "* * * * *"
STOP_AFTER_LAST_SLOT_SECONDS = 10


def seed(users: int) -> dict:
    from ledger.services.demo import DemoPlan, demo_seed

    return demo_seed(plan=DemoPlan(users=users))


def schedules_every_minute(jobs: list[str]) -> list[str]:
    """Put every schedule of `jobs` on EVERY_MINUTE; returns the schedules' names."""
    from jobs.models import Schedule
    from jobs.schedules import schedule_create, schedule_update

    names = []
    for job in jobs:
        schedules = list(Schedule.objects.filter(job=job))
        if not schedules:
            names.append(schedule_create(by=NAME, name=job, job=job, cron=EVERY_MINUTE).name)
        for schedule in schedules:
            schedule_update(schedule=schedule, by=NAME, reason="drift benchmark", cron=EVERY_MINUTE)
            names.append(schedule.name)
    return names


def minute_floor(moment):
    return moment.replace(second=0, microsecond=0)


def collect(*, jobs: list[str], first_slot, last_slot) -> dict:
    from jobs.models import JobRun

    runs = (
        JobRun.objects.filter(
            job__in=jobs, slot__gte=first_slot, slot__lte=last_slot, parent__isnull=True
        )
        .order_by("slot", "job")
        .prefetch_related("attempts")
    )
    samples = []
    for run in runs:
        attempts = sorted(run.attempts.all(), key=lambda attempt: attempt.number)
        started = attempts[0].started_at if attempts else run.started_at
        samples.append(
            {
                "job": run.job,
                "slot": run.slot.isoformat(),
                "run_id": run.pk,
                "status": run.status,
                "drift_s": (started - run.slot).total_seconds() if started else None,
                "tick_s": (run.created_at - run.slot).total_seconds(),
                "handoff_s": (started - run.created_at).total_seconds() if started else None,
            }
        )
    return samples


def stats(values: list[float]) -> dict:
    return harness.distribution(values, (50, 95, 100), digits=3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.drift",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--minutes", type=int, default=10, help="slots (minutes) to measure per job (10)"
    )
    parser.add_argument(
        "--jobs",
        nargs="+",
        default=DEFAULT_JOBS,
        help="jobs whose schedules are put on * * * * * (six cheap ones)",
    )
    parser.add_argument("--users", type=int, default=200, help="demo users to seed (200)")
    parser.add_argument(
        "--threads",
        type=int,
        default=harness.DEFAULT_THREADS,
        help=f"worker threads (Dramatiq's default, {harness.DEFAULT_THREADS})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)
    if args.minutes < 1:
        parser.error("--minutes must be at least 1")

    database_url, redis_url = harness.bench_urls()
    harness.django_setup()
    from django.utils import timezone

    from jobs.models import FINISHED_STATUSES, JobRun
    from jobs.registry import get_job

    for job in args.jobs:
        get_job(job)  # fails early on a typo
    database = f"{harness.database_name(database_url)}_drift"
    machine = harness.machine_info(database_url=database_url, redis_url=redis_url)
    print(f"Machine: {harness.describe_machine(machine)}")
    print(
        f"{len(args.jobs)} jobs on '{EVERY_MINUTE}' for {args.minutes:g} minutes: "
        f"{', '.join(args.jobs)}; 1 worker process x {args.threads} threads; "
        f"demo data for {args.users} users; Redis {redis_url}",
        flush=True,
    )
    harness.database_create(database_url, database)
    harness.django_use_database(database, migrate=True)
    schedules = schedules_every_minute(args.jobs)
    seeded = seed(args.users)
    harness.redis_flush(redis_url)
    run_url = harness.url_with_database(database_url, database)
    worker = harness.worker_process(
        processes=1,
        threads=args.threads,
        database_url=run_url,
        redis_url=redis_url,
        log_path=harness.log_path(f"{NAME}-worker"),
    )
    scheduler = harness.scheduler_process(
        database_url=run_url,
        redis_url=redis_url,
        log_path=harness.log_path(f"{NAME}-scheduler"),
    )
    load_before = harness.load_average()
    worker.start()
    try:
        scheduler.start()
        try:
            started = timezone.now()
            first_slot = minute_floor(started) + timedelta(minutes=1)
            last_slot = first_slot + timedelta(minutes=args.minutes - 1)
            # Stop a little after the last slot's tick went out.
            stop_at = last_slot + timedelta(seconds=STOP_AFTER_LAST_SLOT_SECONDS)
            while (now := timezone.now()) < stop_at:
                time.sleep(min(30.0, (stop_at - now).total_seconds()))
                done = JobRun.objects.filter(slot__gte=first_slot).count()
                print(
                    f"  {(timezone.now() - started).total_seconds() / 60:.1f} min: "
                    f"{done} scheduled runs",
                    flush=True,
                )
            stopped = timezone.now()
            scheduler_cpu = scheduler.cpu_seconds()
        finally:
            scheduler.stop()
        # Let the last slot's runs finish before the worker goes.
        harness.wait_for(
            lambda: (
                not JobRun.objects.filter(slot__gte=first_slot, slot__lte=last_slot)
                .exclude(status__in=FINISHED_STATUSES)
                .exists()
            ),
            timeout=120,
            interval=0.5,
            what="the last slot's runs",
        )
        worker_cpu = worker.cpu_seconds()
    finally:
        worker.stop()
    load_after = harness.load_average()
    samples = collect(jobs=args.jobs, first_slot=first_slot, last_slot=last_slot)
    harness.django_release_database()
    if not args.keep:
        harness.database_drop(database_url, database)

    slots = args.minutes
    by_job = defaultdict(list)
    for item in samples:
        by_job[item["job"]].append(item)
    rows = []
    per_job = {}
    for job in args.jobs:
        items = by_job.get(job, [])
        drift = stats([i["drift_s"] for i in items if i["drift_s"] is not None])
        per_job[job] = {
            "runs": len(items),
            "missed_slots": slots - len(items),
            "statuses": dict(Counter(i["status"] for i in items)),
            "drift_s": drift,
        }
        rows.append(
            [
                job,
                len(items),
                slots - len(items),
                drift.get("p50"),
                drift.get("p95"),
                drift.get("max"),
            ]
        )
    overall = stats([i["drift_s"] for i in samples if i["drift_s"] is not None])
    tick = stats([i["tick_s"] for i in samples])
    handoff = stats([i["handoff_s"] for i in samples if i["handoff_s"] is not None])
    rows.append(
        [
            "all jobs",
            len(samples),
            slots * len(args.jobs) - len(samples),
            overall.get("p50"),
            overall.get("p95"),
            overall.get("max"),
        ]
    )
    print()
    print(harness.table(["job", "runs", "missed", "p50 s", "p95 s", "max s"], rows))
    print(
        f"\nof which slot -> recorded by the tick: p50 {tick.get('p50')} s, "
        f"p95 {tick.get('p95')} s; recorded -> running: p50 {handoff.get('p50')} s, "
        f"p95 {handoff.get('p95')} s"
    )
    p95 = overall.get("p95")
    met = p95 is not None and p95 <= TARGET_P95_SECONDS
    print(f"drift p95 {p95} s (target <= {TARGET_P95_SECONDS:g} s)  {'met' if met else 'MISSED'}")
    missed = slots * len(args.jobs) - len(samples)
    correct = bool(samples) and missed == 0
    print(
        f"every slot ran once: {'yes' if correct else f'NO ({missed} missed)'}; "
        f"load average before {load_before}, after {load_after}"
    )
    return harness.results_finish(
        NAME,
        {
            "command": harness.command_line(),
            "machine": machine,
            "parameters": {
                "minutes": args.minutes,
                "jobs": args.jobs,
                "cron": EVERY_MINUTE,
                "schedules": schedules,
                "threads": args.threads,
                "users": args.users,
                "seeded": seeded,
                "redis_url": redis_url,
                "timed": "schedule slot -> first attempt's started_at",
            },
            "window": {
                "scheduler_started": started.isoformat(),
                "scheduler_stopped": stopped.isoformat(),
                "first_slot": first_slot.isoformat(),
                "last_slot": last_slot.isoformat(),
                "slots": slots,
            },
            "load_average_before": load_before,
            "load_average_after": load_after,
            "scheduler_cpu_seconds": round(scheduler_cpu, 2),
            "worker_cpu_seconds": round(worker_cpu, 2),
            "drift_s": overall,
            "tick_s": tick,
            "handoff_s": handoff,
            "per_job": per_job,
            "targets": {"p95_s": {"target": TARGET_P95_SECONDS, "actual": p95, "met": met}},
            "samples": samples,
            "correct": correct,
        },
        correct=correct,
        check=args.check,
        targets_met=met,
    )


if __name__ == "__main__":
    sys.exit(main())
