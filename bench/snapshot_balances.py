"""Benchmark: the daily balance snapshot of 1,000,000 wallets on PostgreSQL.

    python -m bench.snapshot_balances [--wallets 1000000] [--batch-size N] [--check] [--keep]

On its own database (`steward_bench_snapshots`, next to DATABASE_URL's), rebuilt with
set-based SQL: `--wallets` users and wallets with nonzero balances set directly (the benchmark
measures only the snapshot, so no transfers are booked), the two source accounts and a few
prize-pool accounts. Then it measures

  (a) Steward's job: `snapshot_balances` through the runner (job_run_request + job_run_execute,
      the code path a worker's actor runs), in a fresh subprocess whose peak RSS is the
      worker's memory;
  (b) the baseline, in this process: the same rows written by one bare
      `INSERT INTO ... SELECT` per table in one transaction.

It prints wall time and rows per second of each and the ratio (a)/(b), and writes
bench/results/snapshot_balances.json. Targets (issue 18): (a) under 30 s for 1,000,000 wallets,
peak RSS of (a) under 200 MB. With --check the exit status is 1 when a target is missed; it is
1 anyway when a measurement wrote the wrong rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import harness

NAME = "snapshot_balances"
DATABASE = "steward_bench_snapshots"
AS_OF = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
TARGET_SECONDS_PER_MILLION = 30.0
TARGET_PEAK_MB = 200.0
POOLS = 10


def dataset_build(*, wallets: int) -> dict:
    """`wallets` users and wallets with deterministic nonzero balances; the sources hold the
    negative of what the wallets and pools hold, so every asset sums to zero."""
    from django.db import connection, transaction

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE ledger_walletsnapshot, ledger_accountsnapshot, ledger_balancesnapshot, "
            f"{', '.join(harness.LEDGER_TABLES)} RESTART IDENTITY CASCADE"
        )
        harness.users_insert(cursor, count=wallets, joined=AS_OF)
        cursor.execute(
            """
            INSERT INTO ledger_wallet (id, user_id, spendable_balance, receivable_balance,
                                       charity_coins, trust_score, created_at)
            SELECT i, i, 1000 + 100 * ((i * 37) %% 4500), 100 * ((i * 13) %% 50),
                   50 * ((i * 7) %% 20), 1.00, %(as_of)s
            FROM generate_series(1, %(wallets)s) AS i
            """,
            {"wallets": wallets, "as_of": AS_OF},
        )
        cursor.execute(
            """
            INSERT INTO ledger_systemaccount (code, asset, balance, allow_negative)
            SELECT 'pool:' || i, 'money', 10000 * i, false FROM generate_series(1, %(pools)s) AS i
            UNION ALL
            SELECT 'system:external', 'money',
                   -(SELECT SUM(spendable_balance + receivable_balance) FROM ledger_wallet)
                   - 10000 * %(pools)s * (%(pools)s + 1) / 2, true
            UNION ALL
            SELECT 'system:coin_issuance', 'coins',
                   -(SELECT SUM(charity_coins) FROM ledger_wallet), true
            """,
            {"pools": POOLS},
        )
        for table in ("auth_user", "ledger_wallet"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT MAX(id) FROM {table}))"
            )
    harness.vacuum_analyze()
    return {"seconds": round(time.perf_counter() - started, 2)}


def snapshots_empty() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE ledger_walletsnapshot, ledger_accountsnapshot, ledger_balancesnapshot, "
            "jobs_jobrunattempt, jobs_jobrun CASCADE"
        )
        cursor.execute("VACUUM ANALYZE ledger_walletsnapshot")
        cursor.execute("CHECKPOINT")


def expected_totals() -> tuple:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*), SUM(spendable_balance), SUM(receivable_balance), "
            "SUM(charity_coins) FROM ledger_wallet"
        )
        return tuple(int(value) for value in cursor.fetchone())


def written_totals() -> tuple:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*), SUM(spendable_balance), SUM(receivable_balance), "
            "SUM(charity_coins) FROM ledger_walletsnapshot"
        )
        return tuple(int(value or 0) for value in cursor.fetchone())


# --- (a) the job, in a fresh worker-like process ----------------------------------------------


def job_measure_in_subprocess(*, database_url: str, batch_size: int | None) -> dict:
    env = {**os.environ, "DATABASE_URL": database_url}
    if batch_size:
        env["STEWARD_BATCH_SIZE"] = str(batch_size)
    completed = subprocess.run(
        [sys.executable, "-m", "bench.snapshot_balances", "--run-job"],
        env=env,
        capture_output=True,
        text=True,
        cwd=harness.ROOT,
    )
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr[-5000:])
        raise RuntimeError(f"the job subprocess exited with {completed.returncode}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def peak_rss_mb(usage) -> float:
    """This program's own high-water mark (VmHWM; ru_maxrss would include the parent's at
    fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(usage.ru_maxrss / 1024, 1)


def job_run_here() -> dict:
    """Body of the subprocess: snapshot_balances through the runner, as a worker runs it."""
    from django.db import connection

    from jobs.conf import conf
    from jobs.runner import job_run_execute
    from jobs.services import job_run_request

    with connection.cursor() as cursor:  # connect before the clock starts
        cursor.execute("SELECT 1")
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    run = job_run_request(enqueue=False, job=NAME, trigger="cli", as_of=AS_OF)
    run = job_run_execute(run_id=run.pk)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "seconds": round(seconds, 3),
        "run_status": run.status,
        "run_error": run.error,
        "summary": run.summary,
        "batch_size": conf.BATCH_SIZE,
        "worker_cpu_seconds": round(
            usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime, 2
        ),
        "peak_rss_mb": peak_rss_mb(usage),
    }


# --- (b) the baseline: one bare INSERT ... SELECT per table -----------------------------------


def baseline_measure() -> dict:
    from django.db import connection, transaction

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_balancesnapshot (day, taken_at, seen_transactions, wallets, "
            "accounts, total_spendable, total_receivable, total_coins, pools_money) "
            "VALUES (%s, %s, '', 0, 0, 0, 0, 0, 0) RETURNING id",
            [AS_OF.date(), AS_OF],
        )
        (snapshot_id,) = cursor.fetchone()
        cursor.execute(
            "INSERT INTO ledger_walletsnapshot (snapshot_id, wallet_id, spendable_balance, "
            "receivable_balance, charity_coins) "
            "SELECT %s, id, spendable_balance, receivable_balance, charity_coins "
            "FROM ledger_wallet",
            [snapshot_id],
        )
        rows = cursor.rowcount
        cursor.execute(
            "INSERT INTO ledger_accountsnapshot (snapshot_id, account_id, balance) "
            "SELECT %s, id, balance FROM ledger_systemaccount",
            [snapshot_id],
        )
        rows += cursor.rowcount
    return {"seconds": round(time.perf_counter() - started, 3), "rows": rows}


# --- Report -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.snapshot_balances", description=__doc__)
    parser.add_argument(
        "--wallets", type=int, default=1_000_000, help="wallets to snapshot (a quick run: 50000)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: STEWARD_BATCH_SIZE")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--run-job", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.run_job:
        harness.django_setup()
        print(json.dumps(job_run_here(), default=str))
        return 0

    base_url, _redis_url = harness.bench_urls()
    database_url = harness.url_with_database(base_url, DATABASE)
    harness.database_create(database_url, DATABASE)
    os.environ["DATABASE_URL"] = database_url
    harness.django_setup()
    harness.django_use_database(DATABASE, migrate=True)
    from django.db import connection

    machine = harness.machine_info(database_url=database_url)
    print(harness.describe_machine({**machine, "redis": "-"}), flush=True)
    build = dataset_build(wallets=args.wallets)
    expected = expected_totals()
    print(f"  dataset: {args.wallets:,} wallets built in {build['seconds']:.1f} s", flush=True)

    job = job_measure_in_subprocess(database_url=database_url, batch_size=args.batch_size)
    job_written = written_totals()
    job_rows = job["summary"].get("wallets_snapshotted", 0) + job["summary"].get(
        "accounts_snapshotted", 0
    )
    job_ok = (
        job["run_status"] == "succeeded"
        and job_written == expected
        and job["summary"].get("wallets_snapshotted") == args.wallets
    )
    job["rows"] = job_rows
    job["rows_per_second"] = round(job_rows / job["seconds"]) if job["seconds"] else 0
    print(
        f"  (a) job: {job_rows:,} rows in {job['seconds']:.2f} s "
        f"({job['rows_per_second']:,}/s), peak RSS {job['peak_rss_mb']} MB",
        flush=True,
    )

    snapshots_empty()
    baseline = baseline_measure()
    baseline_ok = written_totals() == expected
    baseline["rows_per_second"] = (
        round(baseline["rows"] / baseline["seconds"]) if baseline["seconds"] else 0
    )
    print(
        f"  (b) one INSERT ... SELECT: {baseline['rows']:,} rows in {baseline['seconds']:.2f} s "
        f"({baseline['rows_per_second']:,}/s)",
        flush=True,
    )

    ratio = (
        job["rows_per_second"] / baseline["rows_per_second"] if baseline["rows_per_second"] else 0
    )
    target_seconds = TARGET_SECONDS_PER_MILLION * args.wallets / 1_000_000
    targets = {
        "job_seconds": {
            "target": round(target_seconds, 1),
            "actual": job["seconds"],
            "met": job["seconds"] < target_seconds,
        },
        "job_peak_rss_mb": {
            "target": TARGET_PEAK_MB,
            "actual": job["peak_rss_mb"],
            "met": job["peak_rss_mb"] < TARGET_PEAK_MB,
        },
    }
    correct = job_ok and baseline_ok
    print()
    print(
        harness.table(
            ["measurement", "rows", "seconds", "rows/s", "notes"],
            [
                [
                    "(a) snapshot_balances (runner)",
                    job_rows,
                    job["seconds"],
                    job["rows_per_second"],
                    f"peak RSS {job['peak_rss_mb']} MB, batches of {job['batch_size']:,}",
                ],
                [
                    "(b) one INSERT ... SELECT",
                    baseline["rows"],
                    baseline["seconds"],
                    baseline["rows_per_second"],
                    "no batches, no staging, no run record",
                ],
            ],
        )
    )
    print(f"(a)/(b) throughput: {ratio:.2f}x")
    for key, target in targets.items():
        verdict = "met" if target["met"] else "MISSED"
        print(f"{key}: {target['actual']} (target < {target['target']})  {verdict}")
    print(f"correctness (run status, rows and totals written): {'ok' if correct else 'FAILED'}")
    report = {
        "command": harness.command_line(),
        "machine": machine,
        "database": connection.settings_dict["NAME"],
        "dataset": {
            "wallets": args.wallets,
            "system_accounts": POOLS + 2,
            "as_of": AS_OF.isoformat(),
            "build_seconds": build["seconds"],
        },
        "results": {"job": job, "baseline": baseline},
        "ratios": {"job_vs_baseline_throughput": round(ratio, 3)},
        "targets": targets,
        "correct": correct,
    }
    harness.django_release_database()
    if not args.keep:
        harness.database_drop(database_url, DATABASE)
    return harness.results_finish(
        NAME,
        report,
        correct=correct,
        check=args.check,
        targets_met=all(target["met"] for target in targets.values()),
    )


if __name__ == "__main__":
    sys.exit(main())
