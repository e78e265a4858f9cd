"""Benchmark: throughput scaling of `release_escrows` with 1 versus 2 worker processes.

    python -m bench.scaling [--escrows 200000] [--wallets 40000] [--processes 1 2]
                            [--threads 8] [--repeat 1] [--fanout-threshold N] [--shard-size N]
                            [--check]

A backlog of `--escrows` due escrows is built once, with set-based SQL (bench.release_escrows'
generator), in a template database; every measurement gets a fresh copy of it (CREATE
DATABASE ... TEMPLATE), an empty Redis database and freshly started workers:
`manage.py rundramatiq --processes N --threads 8` (Dramatiq's default thread count), through
the real Redis broker. The bench process then records and sends one `release_escrows` run (what
`runjob --enqueue` and the API do); the worker that takes it fans the backlog out into shard
runs of STEWARD_SHARD_SIZE escrows, which every worker thread of every process takes from
Redis. Measured: from just before the run is recorded until the parent run is finished (its
last shard ended), in escrows per second.

While it runs, the machine's busy cores and what PostgreSQL's backends are doing (running,
waiting on a lock, idle in a transaction while Python works) are sampled, and the workers' CPU
time is read, so the table shows what limits the throughput. Every measurement is checked: the
run succeeded, nothing is left due, and the ledger reconciles.

Target: 2 processes >= 1.6x one. Writes bench/results/scaling.json.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench import harness

NAME = "scaling"
WALLET_LOCK_SQL = 'SELECT "ledger_wallet"."id"'
JOB = "release_escrows"
TARGET_SPEEDUP = 1.6


def build_template(*, database_url: str, template: str, escrows: int, wallets: int) -> dict:
    from bench.release_escrows import dataset_build

    started = time.perf_counter()
    harness.database_create(database_url, template)
    harness.django_use_database(template, migrate=True)
    built = dataset_build(escrows=escrows, wallets=wallets)
    harness.django_release_database()
    return {"seconds": round(time.perf_counter() - started, 1), "dataset_seconds": built["seconds"]}


def batch_lock_profile(
    *, database_url: str, template: str, database: str, escrows: int, batch_size: int
) -> dict:
    """Release the first `escrows` escrows of a fresh copy in this process, one batch after
    another, timing every statement: how much of a batch's time it holds its row locks (from
    locking its wallets until its commit). Batches that share a wallet, or the coin issuance
    account, cannot overlap that part, so 1 / share bounds what concurrent workers can gain.

    The CPU the batches take, in this process and in its PostgreSQL backend, says how many
    cores each concurrent worker keeps busy: with the lock bound, how many cores it would take
    to reach that bound."""
    import resource

    from django.db import connection

    from bench.release_escrows import AS_OF, backend_cpu_seconds
    from ledger.services.escrows import escrows_release_due

    harness.database_create(database_url, database, template=template)
    harness.django_use_database(database)
    events: list[tuple[float, float, str]] = []

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            events.append((started, time.perf_counter(), " ".join(sql.split())))

    connection.ensure_connection()
    original_commit = connection._commit

    def commit():
        started = time.perf_counter()
        original_commit()
        events.append((started, time.perf_counter(), "COMMIT"))

    connection._commit = commit
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend_pid = cursor.fetchone()[0]

    def worker_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    worker_before, backend_before = worker_cpu(), backend_cpu_seconds(backend_pid)
    try:
        with connection.execute_wrapper(timed):
            summary = escrows_release_due(
                as_of=AS_OF, batch_size=batch_size, pk_range=(1, escrows + 1)
            )
    finally:
        del connection._commit  # back to the class's method
    worker_cpu_seconds = worker_cpu() - worker_before
    backend_after = backend_cpu_seconds(backend_pid)
    backend_cpu = backend_after - backend_before if backend_before is not None else None
    harness.django_release_database()

    batches, current = [], []
    for event in events:
        current.append(event)
        if event[2] == "COMMIT":
            batches.append(current)
            current = []
    batches = batches[:-1]  # the last transaction found nothing left to claim
    totals, locked, statements = [], [], {}
    for batch in batches:
        end = batch[-1][1]
        lock = next((e for e in batch if e[2].startswith(WALLET_LOCK_SQL)), None)
        lock_start = lock[0] if lock else end
        totals.append(end - batch[0][0])
        locked.append(end - lock_start)
        outside = {"locked  ": end - lock_start, "unlocked ": lock_start - batch[0][0]}
        for started, finished, sql in batch:
            part = "locked  " if started >= lock_start else "unlocked "
            statements[part + sql[:60]] = statements.get(part + sql[:60], 0.0) + (
                finished - started
            )
            outside[part] -= finished - started
        # Between statements: Python, and the transfer COPY (not a statement of its own).
        for part, seconds in outside.items():
            key = part + "(outside statements: Python, COPY)"
            statements[key] = statements.get(key, 0.0) + seconds
    if not batches:
        return {}
    share = sum(locked) / sum(totals)
    slowest = sorted(statements.items(), key=lambda item: -item[1])[:10]
    batch_seconds = sum(totals) / len(batches)
    # Every batch (the last, empty one included) spends this much CPU, here and in PostgreSQL.
    cpu_per_batch = (worker_cpu_seconds + (backend_cpu or 0.0)) / (len(batches) + 1)
    cores_per_worker = cpu_per_batch / batch_seconds
    return {
        "escrows": summary["escrows_released"],
        "batches": len(batches),
        "batch_ms_mean": round(batch_seconds * 1000, 1),
        "locked_ms_mean": round(sum(locked) / len(batches) * 1000, 1),
        "locked_share": round(share, 3),
        "max_speedup_bound": round(1 / share, 2) if share else None,
        "worker_cpu_ms_per_batch": round(worker_cpu_seconds / (len(batches) + 1) * 1000, 1),
        "postgres_cpu_ms_per_batch": (
            round(backend_cpu / (len(batches) + 1) * 1000, 1) if backend_cpu is not None else None
        ),
        # A batch's CPU over its wall time: the cores one worker thread keeps busy.
        "cores_per_worker": round(cores_per_worker, 2),
        "cores_at_lock_bound": round(cores_per_worker / share, 1) if share else None,
        "statement_ms_per_batch": {
            key: round(seconds / len(batches) * 1000, 1) for key, seconds in slowest
        },
        "note": "the transfer COPY comes before the wallet locks: it is in the unlocked part",
    }


def measure(
    bench: harness.WorkerBench, *, processes: int, escrows: int, reconcile: bool, label: str
) -> dict:
    from bench.release_escrows import AS_OF, due_count, ledger_clean
    from jobs.services import job_run_request

    run, seconds, report = harness.worker_run_measure(
        bench,
        processes=processes,
        label=label,
        enqueue=lambda: job_run_request(
            job=JOB,
            trigger="cli",
            requested_by="bench",
            reason=f"bench.scaling {label}",
            as_of=AS_OF,
        ),
    )
    released = run.summary.get("escrows_released", 0)
    left_due = due_count()
    clean = ledger_clean() if reconcile else None
    correct = (
        run.status == "succeeded" and released == escrows and left_due == 0 and clean is not False
    )
    return {
        "escrows_released": released,
        "escrows_left_due": left_due,
        "ledger_clean": clean,
        "correct": correct,
        "escrows_per_second": round(released / seconds, 1) if seconds else 0.0,
        **report,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--escrows", type=int, default=200_000, help="due escrows (200,000)")
    parser.add_argument("--wallets", type=int, default=40_000, help="wallets (40,000)")
    harness.worker_arguments_add(parser)
    parser.add_argument(
        "--no-reconcile", action="store_true", help="skip the ledger check after each run"
    )
    parser.add_argument(
        "--lock-profile-escrows",
        type=int,
        default=20_000,
        help="escrows released in-process to time how long a batch holds its locks (0: skip)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args(argv)

    database_url, redis_url = harness.bench_urls()
    worker_env = harness.worker_env(args)
    harness.django_setup()
    from django.conf import settings

    from jobs.conf import conf

    base = harness.database_name(database_url)
    template, database = f"{base}_scaling_tpl", f"{base}_scaling_run"
    machine = harness.machine_info(database_url=database_url, redis_url=redis_url)
    print(f"Machine: {harness.describe_machine(machine)}")
    print(
        f"Dataset: {args.escrows:,} due escrows over {args.wallets:,} wallets; fan-out above "
        f"{conf.FANOUT_THRESHOLD:,} into shards of {conf.SHARD_SIZE:,}; "
        f"batch size {conf.BATCH_SIZE:,}; {args.threads} threads per process; "
        f"Redis {redis_url}",
        flush=True,
    )
    build = build_template(
        database_url=database_url, template=template, escrows=args.escrows, wallets=args.wallets
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
    profile = {}
    try:
        if args.lock_profile_escrows:
            profile = batch_lock_profile(
                database_url=database_url,
                template=template,
                database=database,
                escrows=min(args.lock_profile_escrows, args.escrows),
                batch_size=conf.BATCH_SIZE,
            )
            if profile:
                print(
                    f"  one batch of {conf.BATCH_SIZE:,} takes "
                    f"{profile['batch_ms_mean']} ms and holds its wallet locks for "
                    f"{profile['locked_ms_mean']} ms of it ({profile['locked_share']:.0%}): "
                    f"concurrent batches can gain at most {profile['max_speedup_bound']}x over "
                    f"one at a time; a batch keeps {profile['cores_per_worker']} cores busy "
                    f"(worker and PostgreSQL), so that bound needs "
                    f"{profile['cores_at_lock_bound']} cores",
                    flush=True,
                )
        for round_number in range(1, args.repeat + 1):
            for processes in args.processes:
                result = measure(
                    bench,
                    processes=processes,
                    escrows=args.escrows,
                    reconcile=not args.no_reconcile,
                    label=f"{processes}p-{round_number}",
                )
                measurements.append(result)
                print(
                    f"  {processes} process(es), round {round_number}: "
                    f"{result['escrows_released']:,} escrows in {result['seconds']:.1f} s = "
                    f"{result['escrows_per_second']:,.0f}/s ({result['shards']} shards, "
                    f"{'ok' if result['correct'] else 'INCORRECT'})",
                    flush=True,
                )
    finally:
        harness.django_release_database()
        if not args.keep:
            harness.database_drop(database_url, database)
            harness.database_drop(database_url, template)

    best, rows = harness.process_comparison(
        measurements, rate="escrows_per_second", count="escrows_released"
    )
    print()
    print(
        harness.table(
            [
                "processes",
                "threads",
                "escrows",
                "seconds",
                "escrows/s",
                "vs 1",
                "worker cores",
                "postgres cores",
                "machine cores busy",
                "PostgreSQL backends (mean)",
            ],
            rows,
        )
    )
    targets = {}
    if 1 in best and 2 in best:
        speedup = best[2]["escrows_per_second"] / best[1]["escrows_per_second"]
        targets["two_vs_one_process"] = {
            "target": TARGET_SPEEDUP,
            "actual": round(speedup, 2),
            "met": speedup >= TARGET_SPEEDUP,
        }
        verdict = "met" if speedup >= TARGET_SPEEDUP else "MISSED"
        print(f"\n2 processes vs 1: {speedup:.2f}x (target >= {TARGET_SPEEDUP}x)  {verdict}")
    correct = bool(measurements) and all(result["correct"] for result in measurements)
    print(
        f"correctness (run succeeded, nothing left due, ledger reconciles): "
        f"{'ok' if correct else 'FAILED'}"
    )
    return harness.results_finish(
        NAME,
        {
            "command": harness.command_line(),
            "machine": machine,
            "parameters": {
                "escrows": args.escrows,
                "wallets": args.wallets,
                "processes": args.processes,
                "threads": args.threads,
                "repeat": args.repeat,
                "fanout_threshold": conf.FANOUT_THRESHOLD,
                "shard_size": conf.SHARD_SIZE,
                "batch_size": conf.BATCH_SIZE,
                "broker": settings.DRAMATIQ_BROKER["BROKER"],
                "redis_url": redis_url,
                "timed": "just before the run is recorded -> the parent run's finished_at",
            },
            "template_build": build,
            "batch_lock_profile": profile,
            "measurements": measurements,
            "targets": targets,
            "correct": correct,
        },
        correct=correct,
        check=args.check,
        targets_met=all(target["met"] for target in targets.values()),
    )


if __name__ == "__main__":
    sys.exit(main())
