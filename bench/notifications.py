"""Benchmark: end-to-end notification delivery with 1 and 2 worker processes.

    python -m bench.notifications [--notifications 100000] [--users 10000] [--processes 1 2]
                                  [--threads 8] [--repeat 1] [--fanout-threshold N]
                                  [--shard-size N] [--check]

A backlog of `--notifications` pending push and SMS outbox rows (4 push : 1 SMS, each with a
JSON payload and its unique dedupe key) is built once with set-based SQL in a template
database; every measurement gets a fresh copy, an empty Redis database and freshly started
workers (`manage.py rundramatiq --processes N --threads 8`, Dramatiq's default threads) whose
log goes to a file. The bench process records and sends one `deliver_notifications` run; the
backlog above STEWARD_FANOUT_THRESHOLD fans out into shard runs of STEWARD_SHARD_SIZE rows
that the workers take from Redis. Every notification goes through the default push and SMS
backend, `ledger.channels.LoggingChannel` (one INFO log line each). Measured: from just before
the run is recorded until the parent run is finished, in deliveries per second; then every row
must be `sent`.

The per-channel rate limits are OFF for this benchmark (STEWARD_QUEUE_RATE_LIMITS="" for the
workers): with the defaults (push 6000/60 s, SMS 600/60 s) it would measure the limits.

No target; the issue asks for the numbers. Writes bench/results/notifications.json.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench import harness

NAME = "notifications"
JOB = "deliver_notifications"
WORKER_ENV = {"STEWARD_QUEUE_RATE_LIMITS": ""}


def build_template(*, database_url: str, template: str, notifications: int, users: int) -> dict:
    """Users and pending notifications, all with set-based SQL."""
    from django.db import connection, transaction

    started = time.perf_counter()
    harness.database_create(database_url, template)
    harness.django_use_database(template, migrate=True)
    params = {"users": users, "notifications": notifications}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name,
                                   email, is_staff, is_active, date_joined)
            SELECT i, '!bench', false, 'bench-' || lpad(i::text, 7, '0'), '', '',
                   'bench-' || i || '@example.com', false, true, now() - interval '30 days'
            FROM generate_series(1, %(users)s) AS i
            """,
            params,
        )
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('auth_user', 'id'), %(users)s)", params
        )
        cursor.execute(
            """
            INSERT INTO ledger_notification (id, user_id, channel, kind, payload, dedupe_key,
                                             status, attempts, last_error, created_at)
            SELECT i, 1 + (i * 7919) %% %(users)s,
                   CASE WHEN i %% 5 = 0 THEN 'sms' ELSE 'push' END,
                   'escrow_released_recipient',
                   jsonb_build_object('escrow_id', i, 'transaction',
                                      'TXN-20260115-' || lpad(i::text, 6, '0'),
                                      'amount', 1000 + 100 * (i %% 191)),
                   'escrow-released-recipient:bench-' || i,
                   'pending', 0, '', now() - interval '1 minute'
            FROM generate_series(1, %(notifications)s) AS i
            """,
            params,
        )
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('ledger_notification', 'id'), %(notifications)s)",
            params,
        )
    harness.vacuum_analyze()
    harness.django_release_database()
    return {"seconds": round(time.perf_counter() - started, 1)}


def measure(bench: harness.WorkerBench, *, processes: int, notifications: int, label: str) -> dict:
    from django.db.models import Count

    from jobs.services import job_run_request
    from ledger.models import Notification

    run, seconds, report = harness.worker_run_measure(
        bench,
        processes=processes,
        label=label,
        enqueue=lambda: job_run_request(
            job=JOB, trigger="cli", requested_by="bench", reason=f"bench.notifications {label}"
        ),
    )
    statuses = dict(Notification.objects.values_list("status").order_by().annotate(n=Count("pk")))
    sent = run.summary.get("sent", 0)
    log_text = (harness.ROOT / report["worker_log"]).read_text(errors="replace")
    log_lines = sum(1 for line in log_text.splitlines() if "to user" in line)
    correct = (
        run.status == "succeeded"
        and sent == notifications
        and statuses.get("sent") == notifications
    )
    return {
        "sent": sent,
        "sent_by_channel": run.summary.get("sent_by_channel"),
        "notification_statuses": statuses,
        "delivery_log_lines": log_lines,
        "correct": correct,
        "deliveries_per_second": round(sent / seconds, 1) if seconds else 0.0,
        **report,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.notifications",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--notifications", type=int, default=100_000, help="pending notifications (100,000)"
    )
    parser.add_argument("--users", type=int, default=10_000, help="users they go to (10,000)")
    harness.worker_arguments_add(parser)
    args = parser.parse_args(argv)

    database_url, redis_url = harness.bench_urls()
    worker_env = harness.worker_env(args, WORKER_ENV)
    harness.django_setup()
    from django.conf import settings

    from jobs.conf import conf

    base = harness.database_name(database_url)
    template, database = f"{base}_notifications_tpl", f"{base}_notifications_run"
    machine = harness.machine_info(database_url=database_url, redis_url=redis_url)
    print(f"Machine: {harness.describe_machine(machine)}")
    print(
        f"Dataset: {args.notifications:,} pending notifications (push and SMS) to "
        f"{args.users:,} users, delivered through {settings.STEWARD_CHANNEL_BACKENDS['push']}; "
        f'RATE LIMITS OFF (STEWARD_QUEUE_RATE_LIMITS=""); fan-out above '
        f"{conf.FANOUT_THRESHOLD:,} into shards of {conf.SHARD_SIZE:,}; "
        f"batch size {conf.BATCH_SIZE:,}; {args.threads} threads per process; "
        f"Redis {redis_url}",
        flush=True,
    )
    build = build_template(
        database_url=database_url,
        template=template,
        notifications=args.notifications,
        users=args.users,
    )
    print(f"  template {template} built in {build['seconds']:.1f} s", flush=True)
    bench = harness.WorkerBench(
        name=NAME,
        database_url=database_url,
        redis_url=redis_url,
        template=template,
        database=database,
        threads=args.threads,
        timeout=args.timeout,
        env=worker_env,
    )

    measurements = []
    try:
        for round_number in range(1, args.repeat + 1):
            for processes in args.processes:
                result = measure(
                    bench,
                    processes=processes,
                    notifications=args.notifications,
                    label=f"{processes}p-{round_number}",
                )
                measurements.append(result)
                print(
                    f"  {processes} process(es), round {round_number}: {result['sent']:,} sent "
                    f"in {result['seconds']:.1f} s = {result['deliveries_per_second']:,.0f}/s "
                    f"({result['shards']} shards, {'ok' if result['correct'] else 'INCORRECT'})",
                    flush=True,
                )
    finally:
        harness.django_release_database()
        if not args.keep:
            harness.database_drop(database_url, database)
            harness.database_drop(database_url, template)

    _, rows = harness.process_comparison(measurements, rate="deliveries_per_second", count="sent")
    print()
    print(
        harness.table(
            [
                "processes",
                "threads",
                "delivered",
                "seconds",
                "deliveries/s",
                "vs 1",
                "worker cores",
                "postgres cores",
                "machine cores busy",
                "PostgreSQL backends (mean)",
            ],
            rows,
        )
    )
    print('(rate limits off: STEWARD_QUEUE_RATE_LIMITS="")')
    correct = bool(measurements) and all(result["correct"] for result in measurements)
    print(
        f"correctness (run succeeded, every notification sent once): "
        f"{'ok' if correct else 'FAILED'}"
    )
    return harness.results_finish(
        NAME,
        {
            "command": harness.command_line(),
            "machine": machine,
            "parameters": {
                "notifications": args.notifications,
                "users": args.users,
                "processes": args.processes,
                "threads": args.threads,
                "repeat": args.repeat,
                "rate_limits": "off (STEWARD_QUEUE_RATE_LIMITS='')",
                "backends": {
                    channel: settings.STEWARD_CHANNEL_BACKENDS[channel]
                    for channel in ("push", "sms")
                },
                "fanout_threshold": conf.FANOUT_THRESHOLD,
                "shard_size": conf.SHARD_SIZE,
                "batch_size": conf.BATCH_SIZE,
                "log_level": settings.LOGGING["root"]["level"],
                "broker": settings.DRAMATIQ_BROKER["BROKER"],
                "redis_url": redis_url,
                "timed": "just before the run is recorded -> the parent run's finished_at",
            },
            "template_build": build,
            "measurements": measurements,
            "correct": correct,
        },
        correct=correct,
    )


if __name__ == "__main__":
    sys.exit(main())
