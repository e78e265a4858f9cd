"""Benchmark: releasing due escrows on PostgreSQL.

    python -m bench.release_escrows [--escrows 100000] [--wallets 20000] [--naive 5000]
                                    [--batch-size N] [--check]
    python -m bench.release_escrows --progress-saving [--repeats 4] [--small-escrows 20000]

From an identical fresh dataset each time (rebuilt with set-based SQL and COPY), it measures

  (a) Steward's job: `release_escrows` through the runner (job_run_request + job_run_execute, the
      code path a worker runs), in a fresh subprocess whose peak RSS is the worker's memory; a
      backlog above STEWARD_FANOUT_THRESHOLD fans out into shard runs, which that same process
      then executes one after the other as a single worker would (their messages go to an
      in-memory broker, never to Redis);
  (b) a naive loop: one transaction and a dozen ORM queries per escrow, on `--naive` escrows;
  (c) a raw SQL baseline: one statement that only flips the statuses and moves the balances
      (no transfers, cycles or outbox rows);
  (d) the floor of the job's own writes: every row the job writes (statuses, cycles, two
      transfers and two outbox rows per escrow, money and coin balances) as a handful of
      set-based statements in one transaction, with no batching, locking order or run records;
  (e) the batched floor: (d)'s statements run batch by batch (the job's batch size, primary-key
      order), one transaction per batch, each batch claiming its escrows with FOR UPDATE SKIP
      LOCKED and locking its wallets in id order before their balances move: the least work a
      job with the required guarantees does, with no ORM, runner or per-row Python. Its end
      state must equal (d)'s (counts, transfer total, every balance).

(d)/(c) is the best (a)/(c) any implementation of the job could reach on this machine.
It prints escrows/s for each and the ratios (a)/(b), (a)/(c), (a)/(d), (d)/(c), and writes
bench/results/release_escrows.json. (a)/(d) is also given by CPU time ((d)'s PostgreSQL backend
against (a)'s worker and backend), which a machine shared with other work disturbs less.
Informational, not targets: (e)/(d), what batching with those guarantees costs the floor, and
(a)/(e), the job against its batched floor, each by elapsed and by CPU time.
Targets: (a) >= 20x (b), (a) >= 0.5x (c), peak RSS of (a) under 200 MB. With --check the exit
status is 1 when a target is missed; it is 1 anyway when a measurement did the wrong thing
(counts, run statuses, a ledger that does not reconcile, or (e) ending unlike (d)).

With --progress-saving it measures only what saving a running run's progress costs: (a) with
STEWARD_PROGRESS_SAVE_SECONDS at its default (2.0) and off (10**9 seconds: a run saves only when
it finishes), alternating, each from an identical fresh dataset, in three set-ups: the default
fan-out, one run without fan-out (where the periodic saves happen), and `--small-escrows` in
batches of 50 as the end-to-end tests run. It prints each set-up's throughput ratio (on/off,
target: costs under 2%) with the saves counted and timed inside the job process, and writes
bench/results/release_escrows_progress.json.

The database named in DATABASE_URL (default steward_bench) is created and migrated if missing,
and its ledger, job-run and user tables are emptied for every measurement, so the benchmark
refuses a database whose name does not contain "bench".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench import harness

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/steward_bench"
NAME = "release_escrows"
# Every dataset is built relative to this instant, so each rebuild is identical.
AS_OF = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
TARGET_VS_NAIVE = 20.0
TARGET_VS_SQL = 0.5
TARGET_PEAK_MB = 200.0
# Saving progress at its default interval may cost at most this share of (a)'s throughput.
TARGET_PROGRESS_COST = 0.02
PROGRESS_SAVE_DEFAULT = "2.0"
# "Off": longer than any run, so a run saves its progress only once, when it finishes.
PROGRESS_SAVE_OFF = str(10**9)
SMALL_BATCH_SIZE = 50


# --- Dataset ----------------------------------------------------------------------------------


def dataset_build(*, escrows: int, wallets: int) -> dict:
    """Empty the ledger and create `wallets` funded wallets and `escrows` due escrows.

    Everything is deterministic: the same arguments give the same rows and ids. Each escrow
    has its donation, its pending cycle and its donation transfer; each wallet its deposit;
    the cached balances equal the replay of the transfers, so the ledger reconciles.
    """
    from django.conf import settings
    from django.db import connection, transaction

    from ledger.services.transfers import COIN_ISSUANCE, EXTERNAL_MONEY, transfer_id

    if wallets < 2:
        raise ValueError("the benchmark needs at least 2 wallets")
    started = time.perf_counter()
    hold = timedelta(hours=settings.ESCROW_HOLD_HOURS)
    params = {
        "wallets": wallets,
        "escrows": escrows,
        "as_of": AS_OF,
        "hold": hold,
        # The oldest escrow's hold ended an hour plus one second per escrow before as_of, the
        # newest an hour before it; ids follow age, as they do in production.
        "newest": AS_OF - hold - timedelta(hours=1),
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(harness.LEDGER_TABLES)} RESTART IDENTITY CASCADE")
        harness.users_insert(cursor, count=params["wallets"], joined=params["as_of"])
        # The plan: a donor and a different recipient per escrow, spread over the wallets.
        cursor.execute(
            """
            CREATE TEMP TABLE bench_plan ON COMMIT DROP AS
            SELECT j AS id, d.donor,
                   1 + (d.donor - 1 + 1 + (j * 104729) %% (%(wallets)s - 1)) %% %(wallets)s
                       AS recipient,
                   1000 + 100 * ((j * 2654435761) %% 191) AS amount,
                   %(newest)s::timestamptz - (%(escrows)s - j) * interval '1 second'
                       AS created_at
            FROM generate_series(1::bigint, %(escrows)s) AS j,
                 LATERAL (SELECT 1 + (j * 7919 + 13) %% %(wallets)s AS donor) AS d
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO ledger_wallet (id, user_id, spendable_balance, receivable_balance,
                                       charity_coins, trust_score, created_at)
            SELECT i, i, 50000 + 100 * ((i * 37) %% 4500), COALESCE(r.amount, 0), 0, 1.00,
                   %(as_of)s
            FROM generate_series(1, %(wallets)s) AS i
            LEFT JOIN (SELECT recipient, SUM(amount) AS amount FROM bench_plan
                       GROUP BY recipient) AS r ON r.recipient = i
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO ledger_donation (id, reference, amount, created_at, donor_id, recipient_id)
            SELECT id, 'TXN-' || to_char(created_at AT TIME ZONE 'UTC', 'YYYYMMDD') || '-'
                       || lpad(id::text, GREATEST(length(id::text), 5), '0'),
                   amount, created_at, donor, recipient
            FROM bench_plan
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO ledger_escrow (id, donation_id, donor_id, recipient_id, amount, status,
                                       created_at, hold_until)
            SELECT id, id, donor, recipient, amount, 'holding', created_at,
                   created_at + %(hold)s
            FROM bench_plan
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO ledger_donationcycle (id, wallet_id, donation_id, amount, status,
                                              created_at)
            SELECT id, recipient, id, amount, 'pending', created_at FROM bench_plan
            """,
            params,
        )
        # Each wallet's deposit covers what it gave plus what it still holds.
        cursor.execute(
            """
            SELECT w.id, w.spendable_balance + COALESCE(g.amount, 0)
            FROM ledger_wallet AS w
            LEFT JOIN (SELECT donor, SUM(amount) AS amount FROM bench_plan GROUP BY donor) AS g
                   ON g.donor = w.id
            ORDER BY w.id
            """
        )
        deposits = cursor.fetchall()
        cursor.execute(
            "SELECT id, donor, recipient, amount, created_at FROM bench_plan ORDER BY id"
        )
        donations = cursor.fetchall()
        with cursor.cursor.copy(
            "COPY ledger_transfer (id, reference, kind, asset, amount, debit_account, "
            "credit_account, subject_type, subject_id, created_at) FROM STDIN"
        ) as copy:
            for wallet_id, amount in deposits:
                reference = f"deposit:bench-{wallet_id}"
                copy.write_row(
                    (
                        transfer_id(reference),
                        reference,
                        "deposit",
                        "money",
                        amount,
                        EXTERNAL_MONEY,
                        f"wallet:{wallet_id}:spendable",
                        "",
                        None,
                        params["newest"] - timedelta(days=1, seconds=escrows),
                    )
                )
            for donation_id, donor, recipient, amount, created_at in donations:
                reference = f"donation:{donation_id}"
                copy.write_row(
                    (
                        transfer_id(reference),
                        reference,
                        "donation",
                        "money",
                        amount,
                        f"wallet:{donor}:spendable",
                        f"wallet:{recipient}:receivable",
                        "donation",
                        donation_id,
                        created_at,
                    )
                )
        deposited = sum(amount for _wallet, amount in deposits)
        cursor.execute(
            "INSERT INTO ledger_systemaccount (code, asset, balance, allow_negative) "
            "VALUES (%s, 'money', %s, true), (%s, 'coins', 0, true)",
            [EXTERNAL_MONEY, -deposited, COIN_ISSUANCE],
        )
        for table in ("auth_user", "ledger_wallet", "ledger_donation", "ledger_escrow"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT MAX(id) FROM {table}))"
            )
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('ledger_donationcycle', 'id'), "
            "(SELECT MAX(id) FROM ledger_donationcycle))"
        )
    with connection.cursor() as cursor:
        for table in harness.LEDGER_TABLES:
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute("CHECKPOINT")
    return {"seconds": round(time.perf_counter() - started, 2)}


def due_count() -> int:
    from ledger.services.escrows import escrows_due

    return escrows_due(as_of=AS_OF).count()


def ledger_clean() -> bool:
    from ledger.services.reconcile import ledger_reconcile

    report = ledger_reconcile()
    if not report["clean"]:
        failed = [check for check in report["checks"] if not check["ok"]]
        print(f"  ledger does not reconcile: {json.dumps(failed, default=str)[:2000]}")
    return report["clean"]


# --- (a) Steward's job, in a fresh worker-like process ----------------------------------------


def job_measure_in_subprocess(*, batch_size: int, env: dict[str, str] | None = None) -> dict:
    env = {**os.environ, "STEWARD_BATCH_SIZE": str(batch_size), **(env or {})}
    completed = subprocess.run(
        [sys.executable, "-m", "bench.release_escrows", "--run-job"],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr[-5000:])
        raise RuntimeError(f"the job subprocess exited with {completed.returncode}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def backend_cpu_seconds(pid: int) -> float | None:
    """CPU time of a PostgreSQL backend process, when the server runs on this machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # utime and stime are fields 14 and 15 of stat(5); the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(usage) -> float:
    """Peak resident memory of this process, Django included.

    On Linux ru_maxrss survives exec: a child spawned by the (much larger) benchmark process
    would report the parent's RSS at fork. VmHWM is the high-water mark of this program's own
    address space, so it is read first; ru_maxrss (KiB on Linux) is the fallback.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(usage.ru_maxrss / 1024, 1)


def job_run_here() -> dict:
    """Body of the subprocess: run release_escrows through the runner, then its shards."""
    import dramatiq
    from dramatiq import Message
    from dramatiq.brokers.stub import StubBroker

    # Shard messages go to an in-memory broker that this process drains itself, so the
    # benchmark never talks to (or leaves messages in) a Redis a real worker may listen to.
    broker = StubBroker()
    dramatiq.set_broker(broker)

    from django.db import connection

    from jobs.actors import actor_for
    from jobs.conf import conf
    from jobs.models import JobRun, RunStatus
    from jobs.runner import job_run_execute
    from jobs.services import job_run_request

    saves = progress_saves_count()
    queue = broker.queues.get(actor_for("release_escrows").queue_name)
    with connection.cursor() as cursor:  # connect before the clock starts
        cursor.execute("SELECT pg_backend_pid()")
        backend_pid = cursor.fetchone()[0]
    backend_before = backend_cpu_seconds(backend_pid)
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    started = time.perf_counter()
    run = job_run_request(enqueue=False, job="release_escrows", trigger="cli", as_of=AS_OF)
    run = job_run_execute(run_id=run.pk)
    shards = 0
    while not queue.empty():
        message = Message.decode(queue.get())
        job_run_execute(run_id=message.args[0], message_id=message.message_id)
        shards += 1
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_seconds = usage.ru_utime + usage.ru_stime - cpu_before
    backend_after = backend_cpu_seconds(backend_pid)
    run = JobRun.objects.get(pk=run.pk)
    failed = JobRun.objects.filter(parent=run).exclude(status=RunStatus.SUCCEEDED).count()
    return {
        "seconds": seconds,
        "escrows": run.summary.get("escrows_released", 0),
        "run_status": run.status,
        "summary": {k: v for k, v in run.summary.items() if k != "sample_ids"},
        "shards": shards,
        "shards_not_succeeded": failed,
        "batch_size": conf.BATCH_SIZE,
        "fanout_threshold": conf.FANOUT_THRESHOLD,
        "shard_size": conf.SHARD_SIZE,
        "progress_save_seconds": str(conf.PROGRESS_SAVE_SECONDS),
        "progress_saves": saves["count"],
        "progress_saving_seconds": round(saves["seconds"], 4),
        "peak_rss_mb": peak_rss_mb(usage),
        # What getrusage says; on Linux it also counts the parent's RSS at fork, see above.
        "ru_maxrss_mb": round(usage.ru_maxrss / 1024, 1),
        "worker_cpu_seconds": round(cpu_seconds, 2),
        "postgres_backend_cpu_seconds": (
            round(backend_after - backend_before, 2)
            if backend_before is not None and backend_after is not None
            else None
        ),
    }


def progress_saves_count() -> dict:
    """Count and time every progress save of the runs in this process (the run's progress and
    its attempt's log lines), by wrapping the context's save: the direct cost, which the
    throughput ratio measures too but within the machine's noise."""
    from jobs.context import JobContext

    saves = {"count": 0, "seconds": 0.0}
    save = JobContext._save_progress

    def timed_save(context, **kwargs) -> None:
        started = time.perf_counter()
        save(context, **kwargs)
        saves["seconds"] += time.perf_counter() - started
        saves["count"] += 1

    JobContext._save_progress = timed_save
    return saves


# --- (b) The naive loop -----------------------------------------------------------------------


def naive_release_one(pk: int, *, now: datetime) -> bool:
    """The straightforward ORM version: one transaction and a dozen queries for one escrow."""
    from django.conf import settings
    from django.db import transaction
    from django.db.models import F

    from ledger.models import (
        DonationCycle,
        Escrow,
        Notification,
        SystemAccount,
        Transfer,
        TransferSubject,
        Wallet,
    )
    from ledger.services.transfers import COIN_ISSUANCE, transfer_id, wallet_account
    from ledger.statuses import CycleStatus, EscrowStatus

    coins = settings.DONOR_RELEASE_COINS
    with transaction.atomic():
        escrow = (
            Escrow.objects.select_for_update(of=("self",))
            .select_related("donation", "donor", "recipient")
            .filter(pk=pk, status=EscrowStatus.HOLDING, hold_until__lte=AS_OF)
            .first()
        )
        if escrow is None:
            return False
        escrow.status = EscrowStatus.RELEASED
        escrow.released_at = now
        escrow.save(update_fields=["status", "released_at"])
        recipient = Wallet.objects.select_for_update().get(pk=escrow.recipient_id)
        recipient.receivable_balance = F("receivable_balance") - escrow.amount
        recipient.spendable_balance = F("spendable_balance") + escrow.amount
        recipient.save(update_fields=["receivable_balance", "spendable_balance"])
        for reference, kind, asset, amount, debit, credit in (
            (
                f"escrow-release:{pk}",
                "escrow_release",
                "money",
                escrow.amount,
                wallet_account(escrow.recipient_id, "receivable"),
                wallet_account(escrow.recipient_id, "spendable"),
            ),
            (
                f"escrow-coins:{pk}",
                "coin_award",
                "coins",
                coins,
                COIN_ISSUANCE,
                wallet_account(escrow.donor_id, "coins"),
            ),
        ):
            Transfer.objects.create(
                id=transfer_id(reference),
                reference=reference,
                kind=kind,
                asset=asset,
                amount=amount,
                debit_account=debit,
                credit_account=credit,
                subject_type=TransferSubject.ESCROW,
                subject_id=pk,
            )
        Wallet.objects.filter(pk=escrow.donor_id).update(charity_coins=F("charity_coins") + coins)
        SystemAccount.objects.filter(code=COIN_ISSUANCE).update(balance=F("balance") - coins)
        DonationCycle.objects.filter(
            donation_id=escrow.donation_id, status=CycleStatus.PENDING
        ).update(
            status=CycleStatus.OBLIGATED,
            obligated_at=now,
            due_at=AS_OF + timedelta(days=settings.CYCLE_DUE_DAYS),
        )
        payload = {
            "escrow_id": pk,
            "transaction": escrow.donation.reference,
            "amount": escrow.amount,
        }
        Notification.objects.create(
            user_id=escrow.donor.user_id,
            channel="push",
            kind="escrow_released_donor",
            dedupe_key=f"escrow-released-donor:{pk}",
            payload={**payload, "coins": coins},
        )
        Notification.objects.create(
            user_id=escrow.recipient.user_id,
            channel="push",
            kind="escrow_released_recipient",
            dedupe_key=f"escrow-released-recipient:{pk}",
            payload=payload,
        )
    return True


def naive_measure(*, count: int) -> dict:
    from django.utils import timezone

    from ledger.services.escrows import escrows_due

    ids = list(escrows_due(as_of=AS_OF).order_by("pk").values_list("pk", flat=True)[:count])
    started = time.perf_counter()
    released = sum(naive_release_one(pk, now=timezone.now()) for pk in ids)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "escrows": released}


# --- (c) The raw SQL baseline --------------------------------------------------------------------

RAW_SQL = """
WITH released AS (
    UPDATE ledger_escrow SET status = 'released', released_at = %(now)s
    WHERE status = 'holding' AND hold_until <= %(as_of)s
    RETURNING recipient_id, amount
), moves AS (
    SELECT recipient_id, SUM(amount) AS amount, COUNT(*) AS escrows
    FROM released GROUP BY recipient_id
), moved AS (
    UPDATE ledger_wallet AS wallet
    SET receivable_balance = wallet.receivable_balance - moves.amount,
        spendable_balance = wallet.spendable_balance + moves.amount
    FROM moves WHERE wallet.id = moves.recipient_id
    RETURNING moves.escrows
)
SELECT COALESCE(SUM(escrows), 0) FROM moved
"""


def raw_sql_measure() -> dict:
    from django.db import connection, transaction
    from django.utils import timezone

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(RAW_SQL, {"now": timezone.now(), "as_of": AS_OF})
        released = int(cursor.fetchone()[0])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "escrows": released}


# --- (d) The floor of the job's writes -------------------------------------------------------

# The columns of `bench_released`, the released escrows every later statement reads.
FLOOR_RELEASED_COLUMNS = """
    released.*, donor.user_id AS donor_user, recipient.user_id AS recipient_user,
    donation.reference
"""
FLOOR_RELEASED_JOINS = """
    JOIN ledger_wallet AS donor ON donor.id = released.donor_id
    JOIN ledger_wallet AS recipient ON recipient.id = released.recipient_id
    JOIN ledger_donation AS donation ON donation.id = released.donation_id
"""
FLOOR_RELEASE = f"""
    CREATE TEMP TABLE bench_released ON COMMIT DROP AS
    WITH released AS (
        UPDATE ledger_escrow SET status = 'released', released_at = %(now)s
        WHERE status = 'holding' AND hold_until <= %(as_of)s
        RETURNING id, donor_id, recipient_id, amount, donation_id
    )
    SELECT {FLOOR_RELEASED_COLUMNS} FROM released {FLOOR_RELEASED_JOINS}
"""
# Transfer ids are md5 of the reference cast to uuid: core PostgreSQL has no uuid5, and md5
# costs the server about what the sha1 inside uuid5 would.
FLOOR_WRITES = [
    """
    UPDATE ledger_donationcycle AS cycle
    SET status = 'obligated', obligated_at = %(now)s, due_at = %(due_at)s
    FROM bench_released WHERE cycle.donation_id = bench_released.donation_id
      AND cycle.status = 'pending'
    """,
    """
    INSERT INTO ledger_notification
        (user_id, channel, kind, payload, dedupe_key, status, attempts, last_error, created_at)
    SELECT donor_user, 'push', 'escrow_released_donor',
           jsonb_build_object('escrow_id', id, 'transaction', reference, 'amount', amount,
                              'coins', %(coins)s),
           'escrow-released-donor:' || id, 'pending', 0, '', %(now)s
    FROM bench_released
    UNION ALL
    SELECT recipient_user, 'push', 'escrow_released_recipient',
           jsonb_build_object('escrow_id', id, 'transaction', reference, 'amount', amount),
           'escrow-released-recipient:' || id, 'pending', 0, '', %(now)s
    FROM bench_released
    """,
    """
    INSERT INTO ledger_transfer
        (id, reference, kind, asset, amount, debit_account, credit_account, subject_type,
         subject_id, created_at, xact)
    SELECT md5('escrow-release:' || id)::uuid, 'escrow-release:' || id, 'escrow_release',
           'money', amount, 'wallet:' || recipient_id || ':receivable',
           'wallet:' || recipient_id || ':spendable', 'escrow', id, %(now)s,
           pg_current_xact_id()::text::bigint
    FROM bench_released
    UNION ALL
    SELECT md5('escrow-coins:' || id)::uuid, 'escrow-coins:' || id, 'coin_award', 'coins',
           %(coins)s, %(coin_issuance)s, 'wallet:' || donor_id || ':coins', 'escrow', id,
           %(now)s, pg_current_xact_id()::text::bigint
    FROM bench_released
    """,
]
FLOOR_BALANCES = [
    """
    UPDATE ledger_wallet AS wallet
    SET receivable_balance = wallet.receivable_balance - moves.amount,
        spendable_balance = wallet.spendable_balance + moves.amount
    FROM (SELECT recipient_id, SUM(amount) AS amount FROM bench_released GROUP BY recipient_id)
        AS moves
    WHERE wallet.id = moves.recipient_id
    """,
    """
    UPDATE ledger_wallet AS wallet SET charity_coins = wallet.charity_coins + awards.coins
    FROM (SELECT donor_id, %(coins)s * COUNT(*) AS coins FROM bench_released GROUP BY donor_id)
        AS awards
    WHERE wallet.id = awards.donor_id
    """,
    """
    UPDATE ledger_systemaccount
    SET balance = balance - %(coins)s * (SELECT COUNT(*) FROM bench_released)
    WHERE code = %(coin_issuance)s
    """,
]
FLOOR_SQL = [FLOOR_RELEASE, *FLOOR_WRITES, *FLOOR_BALANCES]


def floor_measure() -> dict:
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    from ledger.services.transfers import COIN_ISSUANCE

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend_pid = cursor.fetchone()[0]
    now = timezone.now()
    params = {
        "now": now,
        "as_of": AS_OF,
        "due_at": AS_OF + timedelta(days=settings.CYCLE_DUE_DAYS),
        "coins": settings.DONOR_RELEASE_COINS,
        "coin_issuance": COIN_ISSUANCE,
    }
    backend_before = backend_cpu_seconds(backend_pid)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in FLOOR_SQL:
            cursor.execute(statement, params)
        cursor.execute("SELECT COUNT(*) FROM bench_released")
        released = int(cursor.fetchone()[0])
    seconds = time.perf_counter() - started
    backend_after = backend_cpu_seconds(backend_pid)
    return {
        "seconds": seconds,
        "escrows": released,
        "postgres_backend_cpu_seconds": (
            round(backend_after - backend_before, 2)
            if backend_before is not None and backend_after is not None
            else None
        ),
    }


# --- (e) The floor, batched with the job's guarantees -------------------------------------------

# The escrow rows of one batch: claimed with SKIP LOCKED in primary-key order, after the last
# batch's, then flipped under the same condition as (d)'s statement. `bench_released` lives for
# the whole measurement and empties at each commit, so no batch creates a table.
BATCHED_FLOOR_TABLE = f"""
    CREATE TEMP TABLE bench_released ON COMMIT DELETE ROWS AS
    SELECT {FLOOR_RELEASED_COLUMNS}
    FROM (SELECT id, donor_id, recipient_id, amount, donation_id FROM ledger_escrow)
        AS released {FLOOR_RELEASED_JOINS}
    WITH NO DATA
"""
BATCHED_FLOOR_RELEASE = f"""
    WITH claimed AS (
        SELECT id FROM ledger_escrow
        WHERE status = 'holding' AND hold_until <= %(as_of)s AND id > %(after)s
        ORDER BY id LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ), released AS (
        UPDATE ledger_escrow SET status = 'released', released_at = %(now)s
        WHERE id IN (SELECT id FROM claimed) AND status = 'holding'
        RETURNING id, donor_id, recipient_id, amount, donation_id
    )
    INSERT INTO bench_released
    SELECT {FLOOR_RELEASED_COLUMNS} FROM released {FLOOR_RELEASED_JOINS}
"""
# As the job: the batch's wallets locked in id order after its inserts, just before their
# balances move (the system account's UPDATE then locks that row last).
BATCHED_FLOOR_WALLETS_LOCK = """
    SELECT COUNT(*) FROM (
        SELECT id FROM ledger_wallet
        WHERE id IN (SELECT donor_id FROM bench_released
                     UNION SELECT recipient_id FROM bench_released)
        ORDER BY id
        FOR UPDATE
    ) AS locked
"""


def batched_floor_measure(*, batch_size: int) -> dict:
    """(d)'s statements batch by batch, one transaction each, with the job's row locks."""
    from django.conf import settings
    from django.db import connection, transaction
    from django.utils import timezone

    from ledger.services.transfers import COIN_ISSUANCE

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend_pid = cursor.fetchone()[0]
    params = {
        "as_of": AS_OF,
        "due_at": AS_OF + timedelta(days=settings.CYCLE_DUE_DAYS),
        "coins": settings.DONOR_RELEASE_COINS,
        "coin_issuance": COIN_ISSUANCE,
        "limit": batch_size,
        "after": 0,
    }
    released = batches = wallets_locked = 0
    backend_before = backend_cpu_seconds(backend_pid)
    client_before = time.process_time()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(BATCHED_FLOOR_TABLE)
        while True:
            with transaction.atomic():
                params["now"] = timezone.now()
                cursor.execute(BATCHED_FLOOR_RELEASE, params)
                cursor.execute("SELECT COUNT(*), MAX(id) FROM bench_released")
                count, last_id = cursor.fetchone()
                if not count:
                    break
                for statement in FLOOR_WRITES:
                    cursor.execute(statement, params)
                cursor.execute(BATCHED_FLOOR_WALLETS_LOCK)
                wallets_locked += cursor.fetchone()[0]
                for statement in FLOOR_BALANCES:
                    cursor.execute(statement, params)
            released += count
            batches += 1
            params["after"] = last_id
        cursor.execute("DROP TABLE bench_released")
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - client_before
    backend_after = backend_cpu_seconds(backend_pid)
    return {
        "seconds": seconds,
        "escrows": released,
        "batches": batches,
        "batch_size": batch_size,
        "wallet_rows_locked": wallets_locked,
        "postgres_backend_cpu_seconds": (
            round(backend_after - backend_before, 2)
            if backend_before is not None and backend_after is not None
            else None
        ),
        "client_cpu_seconds": round(client_cpu, 2),
    }


def ledger_state() -> dict:
    """What a release leaves behind, to compare (e)'s end state with (d)'s: row counts by
    status and kind, and a digest of every balance."""
    from django.db import connection

    queries = {
        "escrows_released": "SELECT COUNT(*) FROM ledger_escrow WHERE status = 'released'",
        "cycles_obligated": (
            "SELECT COUNT(*) FROM ledger_donationcycle WHERE status = 'obligated'"
        ),
        "notifications": "SELECT COUNT(*) FROM ledger_notification",
        "transfers": "SELECT COUNT(*) FROM ledger_transfer",
        "transfer_amounts": "SELECT SUM(amount)::text FROM ledger_transfer",
        "balances_md5": """
            SELECT md5(string_agg(concat_ws(':', id, spendable_balance, receivable_balance,
                                            charity_coins), ',' ORDER BY id))
            FROM ledger_wallet
        """,
        "system_accounts": """
            SELECT string_agg(code || '=' || balance, ',' ORDER BY code)
            FROM ledger_systemaccount
        """,
    }
    with connection.cursor() as cursor:
        state = {}
        for key, sql in queries.items():
            cursor.execute(sql)
            state[key] = cursor.fetchone()[0]
    return state


# --- Report -----------------------------------------------------------------------------------


def rate(result: dict) -> float:
    return result["escrows"] / result["seconds"] if result["seconds"] else 0.0


# --- Progress saving: on at its default vs off ------------------------------------------------


def progress_saving_measure(
    *, label: str, escrows: int, wallets: int, batch_size: int, repeats: int, env: dict
) -> dict:
    """(a) `repeats` times with progress saving on and off, alternating which goes first, each
    from a fresh dataset; the median of the repeats' on/off throughput ratios."""
    modes = {"on": PROGRESS_SAVE_DEFAULT, "off": PROGRESS_SAVE_OFF}
    rounds: dict[str, list[dict]] = {"on": [], "off": []}
    correct = True
    for repeat in range(repeats):
        order = ["on", "off"] if repeat % 2 == 0 else ["off", "on"]
        for mode in order:
            dataset_build(escrows=escrows, wallets=wallets)
            result = job_measure_in_subprocess(
                batch_size=batch_size,
                env={**env, "STEWARD_PROGRESS_SAVE_SECONDS": modes[mode]},
            )
            correct &= (
                result["escrows"] == escrows
                and result["run_status"] == "succeeded"
                and not result["shards_not_succeeded"]
                and due_count() == 0
            )
            result["escrows_per_second"] = round(rate(result), 1)
            rounds[mode].append(result)
            print(
                f"  {label}, saving {mode}: {result['escrows']:,} in {result['seconds']:.2f} s "
                f"({result['escrows_per_second']:,.0f}/s), {result['progress_saves']} saves "
                f"taking {result['progress_saving_seconds'] * 1000:.1f} ms",
                flush=True,
            )
    # Each repeat's on and off ran back to back: their ratio cancels the machine's slow drift
    # (other work starting or stopping), and the spread of the ratios shows its noise.
    ratios = sorted(
        on["escrows_per_second"] / off["escrows_per_second"]
        for on, off in zip(rounds["on"], rounds["off"], strict=True)
    )
    ratio = statistics.median(ratios)
    saving_share = statistics.median(
        r["progress_saving_seconds"] / r["seconds"] for r in rounds["on"]
    )
    return {
        "label": label,
        "escrows": escrows,
        "batch_size": batch_size,
        "env": env,
        "median_escrows_per_second": {
            mode: statistics.median(r["escrows_per_second"] for r in rounds[mode])
            for mode in rounds
        },
        "throughput_ratio_on_vs_off": round(ratio, 4),
        "pair_ratios": [round(value, 4) for value in ratios],
        "cost_share": round(1 - ratio, 4),
        "saving_time_share": round(saving_share, 5),
        "saves_per_run": statistics.median(r["progress_saves"] for r in rounds["on"]),
        "met": 1 - ratio < TARGET_PROGRESS_COST,
        "correct": correct,
        "rounds": rounds,
    }


def progress_saving_main(args, *, batch_size: int, machine: dict) -> int:
    from django.db import connection

    setups = [
        ("fanned out", args.escrows, batch_size, {}),
        ("one run", args.escrows, batch_size, {"STEWARD_FANOUT_THRESHOLD": "0"}),
        (
            f"batches of {SMALL_BATCH_SIZE}",
            args.small_escrows,
            SMALL_BATCH_SIZE,
            {"STEWARD_FANOUT_THRESHOLD": "0"},
        ),
    ]
    results = [
        progress_saving_measure(
            label=label,
            escrows=escrows,
            wallets=args.wallets,
            batch_size=size,
            repeats=args.repeats,
            env=env,
        )
        for label, escrows, size, env in setups
    ]
    correct = all(result["correct"] for result in results) and ledger_clean()
    print()
    print(
        f"{'set-up':<16}{'escrows':>10}{'batch':>7}{'saves':>7}{'on /s':>9}{'off /s':>9}"
        f"{'on/off':>8}{'spread':>15}{'saving':>9}  target"
    )
    for result in results:
        medians = result["median_escrows_per_second"]
        spread = f"{result['pair_ratios'][0]:.3f}-{result['pair_ratios'][-1]:.3f}"
        verdict = "met" if result["met"] else "MISSED"
        print(
            f"{result['label']:<16}{result['escrows']:>10,}{result['batch_size']:>7,}"
            f"{result['saves_per_run']:>7g}{medians['on']:>9,.0f}{medians['off']:>9,.0f}"
            f"{result['throughput_ratio_on_vs_off']:>8.3f}{spread:>15}"
            f"{result['saving_time_share']:>9.3%}  costs < {TARGET_PROGRESS_COST:.0%}: {verdict}"
        )
    print(
        f"on/off: median over the repeats of the throughput with progress saved every "
        f"{PROGRESS_SAVE_DEFAULT} s over saved only when a run ends, each pair run back to back "
        "(spread: the lowest and highest pair); saves: per run with saving on, its shards' "
        "included; saving: the share of the run spent in the saves themselves"
    )
    print(f"correctness (counts, run statuses, ledger reconciles): {'ok' if correct else 'FAILED'}")
    report = {
        "command": harness.command_line(),
        "machine": machine,
        "database": connection.settings_dict["NAME"],
        "repeats": args.repeats,
        "progress_save_seconds": {"on": PROGRESS_SAVE_DEFAULT, "off": PROGRESS_SAVE_OFF},
        "target_cost_share": TARGET_PROGRESS_COST,
        "setups": results,
        "correct": correct,
    }
    return harness.results_finish(
        f"{NAME}_progress",
        report,
        correct=correct,
        check=args.check,
        targets_met=all(result["met"] for result in results),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.release_escrows", description=__doc__)
    parser.add_argument("--escrows", type=int, default=100_000)
    parser.add_argument("--wallets", type=int, default=20_000)
    parser.add_argument("--naive", type=int, default=5_000)
    parser.add_argument("--batch-size", type=int, default=None, help="default: STEWARD_BATCH_SIZE")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--progress-saving",
        action="store_true",
        help="measure only progress saving on vs off (writes release_escrows_progress.json)",
    )
    parser.add_argument(
        "--repeats", type=int, default=4, help="with --progress-saving: on/off pairs per set-up"
    )
    parser.add_argument(
        "--small-escrows",
        type=int,
        default=20_000,
        help=f"with --progress-saving: escrows released in batches of {SMALL_BATCH_SIZE}",
    )
    parser.add_argument("--run-job", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.run_job:
        harness.django_setup()
        print(json.dumps(job_run_here()))
        return 0

    database_url = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
    created = harness.database_ensure(database_url)
    harness.django_setup()
    from django.core.management import call_command
    from django.db import connection

    from jobs.conf import conf

    call_command("migrate", interactive=False, verbosity=0)
    batch_size = args.batch_size or conf.BATCH_SIZE
    machine = harness.machine_info(database_url=database_url)
    print(
        f"Database {connection.settings_dict['NAME']}{' (created)' if created else ''}: "
        f"PostgreSQL {machine['postgres']}, {machine['cpu_count']} CPUs, "
        f"Python {machine['python']}, load {machine['load_average_at_start']}"
    )
    print(
        f"Dataset: {args.escrows:,} due escrows over {args.wallets:,} wallets; batch size "
        f"{batch_size:,}, fan-out above {conf.FANOUT_THRESHOLD:,} in shards of "
        f"{conf.SHARD_SIZE:,}",
        flush=True,
    )
    if args.progress_saving:
        return progress_saving_main(args, batch_size=batch_size, machine=machine)
    builds = []

    def fresh() -> None:
        builds.append(dataset_build(escrows=args.escrows, wallets=args.wallets)["seconds"])
        due = due_count()
        if due != args.escrows:
            raise RuntimeError(f"the dataset has {due} due escrows, expected {args.escrows}")

    fresh()
    print(f"  dataset built in {builds[-1]:.1f} s", flush=True)
    job = job_measure_in_subprocess(batch_size=batch_size)
    job_ok = (
        job["escrows"] == args.escrows
        and job["run_status"] == "succeeded"
        and not job["shards_not_succeeded"]
        and due_count() == 0
    )
    job["ledger_clean"] = ledger_clean()
    print(
        f"  (a) job: {job['escrows']:,} in {job['seconds']:.2f} s "
        f"({job['shards']} shard runs), peak RSS {job['peak_rss_mb']} MB, CPU "
        f"{job['worker_cpu_seconds']} s in the worker, "
        f"{job['postgres_backend_cpu_seconds']} s in its PostgreSQL backend",
        flush=True,
    )

    fresh()
    naive_count = min(args.naive, args.escrows)
    naive = naive_measure(count=naive_count)
    naive["ledger_clean"] = ledger_clean()
    naive_ok = naive["escrows"] == naive_count
    print(f"  (b) naive: {naive['escrows']:,} in {naive['seconds']:.2f} s", flush=True)

    fresh()
    raw = raw_sql_measure()
    raw_ok = raw["escrows"] == args.escrows and due_count() == 0
    print(f"  (c) raw SQL: {raw['escrows']:,} in {raw['seconds']:.2f} s", flush=True)

    fresh()
    floor = floor_measure()
    floor["ledger_clean"] = ledger_clean()
    floor_ok = floor["escrows"] == args.escrows and due_count() == 0
    floor_state = ledger_state()
    print(
        f"  (d) floor: {floor['escrows']:,} in {floor['seconds']:.2f} s, CPU "
        f"{floor['postgres_backend_cpu_seconds']} s in its PostgreSQL backend",
        flush=True,
    )

    fresh()
    batched = batched_floor_measure(batch_size=batch_size)
    batched["ledger_clean"] = ledger_clean()
    batched["same_end_state_as_floor"] = ledger_state() == floor_state
    batched_ok = (
        batched["escrows"] == args.escrows
        and due_count() == 0
        and batched["same_end_state_as_floor"]
    )
    print(
        f"  (e) batched floor: {batched['escrows']:,} in {batched['seconds']:.2f} s "
        f"({batched['batches']} batches), CPU {batched['postgres_backend_cpu_seconds']} s in "
        f"its PostgreSQL backend, {batched['client_cpu_seconds']} s in this process; end state "
        f"{'equal to' if batched['same_end_state_as_floor'] else 'DIFFERENT from'} (d)'s",
        flush=True,
    )

    rates = {
        "job": rate(job),
        "naive": rate(naive),
        "raw_sql": rate(raw),
        "floor": rate(floor),
        "batched_floor": rate(batched),
    }
    vs_naive = rates["job"] / rates["naive"] if rates["naive"] else 0.0
    vs_sql = rates["job"] / rates["raw_sql"] if rates["raw_sql"] else 0.0
    vs_floor = rates["job"] / rates["floor"] if rates["floor"] else 0.0
    floor_vs_sql = rates["floor"] / rates["raw_sql"] if rates["raw_sql"] else 0.0
    # The same comparison by the CPU each spends (the job's worker and backend against the
    # floor's backend): what (a)/(d) would be on an otherwise idle machine, since on a busy
    # one waiting for a core stretches (a)'s many short statements more than (d)'s few.
    job_cpu = job["worker_cpu_seconds"] + (job["postgres_backend_cpu_seconds"] or 0.0)
    floor_cpu = floor["postgres_backend_cpu_seconds"]
    vs_floor_cpu = floor_cpu / job_cpu if floor_cpu and job_cpu else None
    # What batching with the job's guarantees costs the floor, and the job against that
    # batched floor; by CPU, the backends' against each other and against (a)'s total.
    batched_cpu = batched["postgres_backend_cpu_seconds"]
    batched_vs_floor = rates["batched_floor"] / rates["floor"] if rates["floor"] else 0.0
    job_vs_batched = rates["job"] / rates["batched_floor"] if rates["batched_floor"] else 0.0
    batched_vs_floor_cpu = floor_cpu / batched_cpu if floor_cpu and batched_cpu else None
    job_vs_batched_cpu = batched_cpu / job_cpu if batched_cpu and job_cpu else None
    targets = {
        "job_vs_naive": {"target": TARGET_VS_NAIVE, "actual": round(vs_naive, 2)},
        "job_vs_raw_sql": {"target": TARGET_VS_SQL, "actual": round(vs_sql, 3)},
        "job_peak_rss_mb": {"target": TARGET_PEAK_MB, "actual": job["peak_rss_mb"]},
    }
    targets["job_vs_naive"]["met"] = vs_naive >= TARGET_VS_NAIVE
    targets["job_vs_raw_sql"]["met"] = vs_sql >= TARGET_VS_SQL
    targets["job_peak_rss_mb"]["met"] = job["peak_rss_mb"] < TARGET_PEAK_MB
    correct = (
        job_ok
        and job["ledger_clean"]
        and naive_ok
        and naive["ledger_clean"]
        and raw_ok
        and floor_ok
        and floor["ledger_clean"]
        and batched_ok
        and batched["ledger_clean"]
    )

    rows = [
        ("(a) Steward job (runner)", job, rates["job"], f"peak RSS {job['peak_rss_mb']} MB"),
        ("(b) naive ORM loop", naive, rates["naive"], "one transaction per escrow"),
        ("(c) raw SQL baseline", raw, rates["raw_sql"], "status + balances only"),
        ("(d) floor of the job's writes", floor, rates["floor"], "set-based, one transaction"),
        (
            "(e) batched floor",
            batched,
            rates["batched_floor"],
            f"(d) in batches of {batch_size:,}, claim and wallet locks",
        ),
    ]
    print()
    print(f"{'measurement':<28}{'escrows':>10}{'seconds':>10}{'escrows/s':>12}  notes")
    for name, result, per_second, note in rows:
        print(
            f"{name:<28}{result['escrows']:>10,}{result['seconds']:>10.2f}"
            f"{per_second:>12,.0f}  {note}"
        )
    print()
    for label, key, fmt in (
        ("(a)/(b)", "job_vs_naive", "{:.1f}x (target >= {}x)"),
        ("(a)/(c)", "job_vs_raw_sql", "{:.2f}x (target >= {}x)"),
        ("peak RSS of (a)", "job_peak_rss_mb", "{} MB (target < {} MB)"),
    ):
        target = targets[key]
        verdict = "met" if target["met"] else "MISSED"
        print(f"{label:<16}{fmt.format(target['actual'], target['target'])}  {verdict}")
    print(
        f"(a)/(d)         {vs_floor:.2f}x of the floor; (d)/(c) = {floor_vs_sql:.2f}x, the best "
        "(a)/(c) any implementation writing these rows could reach here"
    )
    if vs_floor_cpu is not None:
        print(
            f"(a)/(d) by CPU  {vs_floor_cpu:.2f}x: (d)'s backend {floor_cpu} s against (a)'s "
            f"{job_cpu:.2f} s in its worker and backend"
        )
    print(
        f"(e)/(d)         {batched_vs_floor:.2f}x elapsed"
        + (f", {batched_vs_floor_cpu:.2f}x by CPU" if batched_vs_floor_cpu is not None else "")
        + ": what batching with the job's guarantees costs the floor"
    )
    print(
        f"(a)/(e)         {job_vs_batched:.2f}x elapsed"
        + (f", {job_vs_batched_cpu:.2f}x by CPU" if job_vs_batched_cpu is not None else "")
        + ": the job against its batched floor"
    )
    print(
        "correctness (counts, run statuses, ledger reconciles, (e) ends as (d)): "
        f"{'ok' if correct else 'FAILED'}"
    )

    report = {
        "command": harness.command_line(),
        "machine": machine,
        "database": connection.settings_dict["NAME"],
        "dataset": {
            "escrows_due": args.escrows,
            "wallets": args.wallets,
            "naive_escrows": naive_count,
            "as_of": AS_OF.isoformat(),
            "build_seconds": builds,
        },
        "settings": {
            "batch_size": batch_size,
            "fanout_threshold": conf.FANOUT_THRESHOLD,
            "shard_size": conf.SHARD_SIZE,
        },
        "results": {
            "job": {**job, "escrows_per_second": round(rates["job"], 1)},
            "naive": {**naive, "escrows_per_second": round(rates["naive"], 1)},
            "raw_sql": {**raw, "escrows_per_second": round(rates["raw_sql"], 1)},
            "floor": {**floor, "escrows_per_second": round(rates["floor"], 1)},
            "batched_floor": {
                **batched,
                "escrows_per_second": round(rates["batched_floor"], 1),
            },
        },
        "ratios": {
            "job_vs_naive": round(vs_naive, 2),
            "job_vs_raw_sql": round(vs_sql, 3),
            "job_vs_floor": round(vs_floor, 3),
            "job_vs_floor_by_cpu": round(vs_floor_cpu, 3) if vs_floor_cpu is not None else None,
            "floor_vs_raw_sql": round(floor_vs_sql, 3),
            # Informational, not targets.
            "batched_floor_vs_floor": round(batched_vs_floor, 3),
            "batched_floor_vs_floor_by_cpu": (
                round(batched_vs_floor_cpu, 3) if batched_vs_floor_cpu is not None else None
            ),
            "job_vs_batched_floor": round(job_vs_batched, 3),
            "job_vs_batched_floor_by_cpu": (
                round(job_vs_batched_cpu, 3) if job_vs_batched_cpu is not None else None
            ),
        },
        "targets": targets,
        "correct": correct,
    }
    return harness.results_finish(
        NAME,
        report,
        correct=correct,
        check=args.check,
        targets_met=all(target["met"] for target in targets.values()),
    )


if __name__ == "__main__":
    sys.exit(main())
