"""Daily balance snapshots: every wallet and system account as one moment of the ledger saw it.

A day's balances are read in one transaction. On PostgreSQL that transaction runs at
REPEATABLE READ, so every batch reads the same moment, and it records which transactions that
moment saw (`pg_current_snapshot()`): the transfers after the snapshot are exactly those booked
by a transaction it did not see, even one that was still open while it was taken. Elsewhere
(SQLite, for `make run`) `taken_at` divides the transfers instead: a booking in flight at that
instant may land on the wrong side.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from ledger.models import Asset, BalanceSnapshot

# The balances are read into a session's temporary tables by the snapshot's transaction, then
# written to the snapshot's tables by a second one: at REPEATABLE READ, the foreign-key check of
# a snapshot row locks its wallet, and fails the transaction ("could not serialize access")
# whenever a booking has changed that wallet since the snapshot began.
_STAGE_SQL = [
    "DROP TABLE IF EXISTS snapshot_stage_wallets",
    "DROP TABLE IF EXISTS snapshot_stage_accounts",
    "CREATE TEMPORARY TABLE snapshot_stage_wallets (wallet_id BIGINT PRIMARY KEY, "
    "spendable_balance BIGINT NOT NULL, receivable_balance BIGINT NOT NULL, "
    "charity_coins BIGINT NOT NULL)",
    "CREATE TEMPORARY TABLE snapshot_stage_accounts (account_id BIGINT PRIMARY KEY, "
    "balance BIGINT NOT NULL)",
]
_UNSTAGE_SQL = [
    "DROP TABLE IF EXISTS snapshot_stage_wallets",
    "DROP TABLE IF EXISTS snapshot_stage_accounts",
]

# One batch of wallets, by id range: the rows are copied by the database itself.
_WALLETS_READ_SQL = """
INSERT INTO snapshot_stage_wallets
    (wallet_id, spendable_balance, receivable_balance, charity_coins)
SELECT id, spendable_balance, receivable_balance, charity_coins
FROM ledger_wallet
WHERE id >= %s AND id < %s
"""

_ACCOUNTS_READ_SQL = """
INSERT INTO snapshot_stage_accounts (account_id, balance)
SELECT id, balance FROM ledger_systemaccount
"""

_WALLETS_WRITE_SQL = """
INSERT INTO ledger_walletsnapshot
    (snapshot_id, wallet_id, spendable_balance, receivable_balance, charity_coins)
SELECT %s, wallet_id, spendable_balance, receivable_balance, charity_coins
FROM snapshot_stage_wallets
WHERE wallet_id >= %s AND wallet_id < %s
"""

_ACCOUNTS_WRITE_SQL = """
INSERT INTO ledger_accountsnapshot (snapshot_id, account_id, balance)
SELECT %s, account_id, balance FROM snapshot_stage_accounts
"""

_WALLET_TOTALS_SQL = """
SELECT COUNT(*), COALESCE(SUM(spendable_balance), 0), COALESCE(SUM(receivable_balance), 0),
       COALESCE(SUM(charity_coins), 0)
FROM {table}
{where}
"""

# Money held by system accounts that are not sources: the prize pools.
_ACCOUNT_TOTALS_SQL = """
SELECT COUNT(*),
       COALESCE(SUM(CASE WHEN NOT allow_negative AND asset = %s THEN balance ELSE 0 END), 0)
FROM ledger_systemaccount
"""

_ACCOUNT_TOTALS_OF_SNAPSHOT_SQL = """
SELECT COUNT(*),
       COALESCE(SUM(CASE WHEN NOT account.allow_negative AND account.asset = %s
                    THEN row.balance ELSE 0 END), 0)
FROM ledger_accountsnapshot AS row
JOIN ledger_systemaccount AS account ON account.id = row.account_id
WHERE row.snapshot_id = %s
"""


def snapshot_day(as_of: datetime) -> date:
    """The day a run's snapshot is of: `as_of`'s date in the current time zone."""
    return timezone.localdate(as_of)


def _one(sql: str, params: list) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _execute(sql: str, params: list) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _totals(wallet_row: tuple, account_row: tuple) -> dict:
    wallets, spendable, receivable, coins = (int(value) for value in wallet_row)
    accounts, pools_money = (int(value) for value in account_row)
    return {
        "wallets": wallets,
        "accounts": accounts,
        "total_spendable": spendable,
        "total_receivable": receivable,
        "total_coins": coins,
        "pools_money": pools_money,
        "money_held": spendable + receivable + pools_money,
    }


@contextlib.contextmanager
def _beside_the_snapshot() -> Iterator[Callable]:
    """A caller of functions on a database connection of their own.

    The snapshot's transaction sees the database as of its start: progress reported from it
    would be invisible until it commits, would miss an operator's cancel request, and updating
    the run's row after a cancel would fail its REPEATABLE READ transaction. Django's
    connections are per thread, so progress goes through a thread of its own. SQLite allows
    one writer at a time: there the progress is reported from the snapshot's own connection.
    """
    if connection.vendor != "postgresql":
        yield lambda function, *args, **kwargs: function(*args, **kwargs)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-progress") as pool:
        try:
            yield lambda function, *args, **kwargs: pool.submit(function, *args, **kwargs).result()
        finally:
            pool.submit(connections.close_all).result()


def balances_snapshot_preview(*, as_of: datetime) -> dict:
    """What a run at `as_of` would write: the day's rows and totals, and the old snapshots it
    would delete. Writes nothing."""
    day = snapshot_day(as_of)
    expired = _expired(day)
    taken = BalanceSnapshot.objects.filter(day=day).exists()
    totals = _totals(
        _one(_WALLET_TOTALS_SQL.format(table="ledger_wallet", where=""), []),
        _one(_ACCOUNT_TOTALS_SQL, [Asset.MONEY]),
    )
    return {
        "day": day.isoformat(),
        "already_taken": taken,
        "wallets_to_snapshot": 0 if taken else totals["wallets"],
        "accounts_to_snapshot": 0 if taken else totals["accounts"],
        **{key: value for key, value in totals.items() if key not in ("wallets", "accounts")},
        "snapshots_to_delete": len(expired),
        "days_to_delete": [snapshot.day.isoformat() for snapshot in expired][:10],
    }


def balances_snapshot_take(
    *,
    as_of: datetime,
    batch_size: int,
    job_run=None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Take the snapshot of `as_of`'s day, unless it was taken already, then delete the
    snapshots past BALANCE_SNAPSHOT_RETENTION_DAYS.

    The balances are read by one transaction (at REPEATABLE READ on PostgreSQL) and the day's
    rows written by a second, both in wallet-id-range batches; `on_progress(done, total,
    what)` is called between batches, on a connection other than the snapshot's (see
    `_beside_the_snapshot`), and what it raises rolls the day back.
    """
    day = snapshot_day(as_of)
    summary = _snapshot_take(
        day=day, batch_size=batch_size, job_run=job_run, on_progress=on_progress
    )
    deleted = _retention_apply(day=day, batch_size=batch_size)
    return {**summary, **deleted}


def _snapshot_take(*, day: date, batch_size: int, job_run, on_progress) -> dict:
    # Inside a caller's transaction (a test's) the isolation level is the caller's: it can only
    # be chosen by a transaction's first statement, and the caller's own bookings share one
    # transaction id whether made before or after. There, as on SQLite, `taken_at` divides.
    exact = connection.vendor == "postgresql" and not connection.in_atomic_block

    def report(done: int, total: int, what: str) -> None:
        if on_progress is not None:
            beside(on_progress, done, total, what)

    with _beside_the_snapshot() as beside:
        with transaction.atomic():
            seen = ""
            if exact:
                _execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", [])
                seen, taken_at = _one("SELECT pg_current_snapshot()::text, clock_timestamp()", [])
            else:
                taken_at = timezone.now()
            if BalanceSnapshot.objects.filter(day=day).exists():
                return {"day": day.isoformat(), "already_taken": True}
            for sql in _STAGE_SQL:
                _execute(sql, [])
            first, last, total = _one(
                "SELECT COALESCE(MIN(id), 0), COALESCE(MAX(id), -1), COUNT(*) FROM ledger_wallet",
                [],
            )
            done = 0
            for start in range(first, last + 1, batch_size):
                done += _execute(_WALLETS_READ_SQL, [start, start + batch_size])
                report(done, total, "wallets read")
            _execute(_ACCOUNTS_READ_SQL, [])
        with transaction.atomic():
            try:
                with transaction.atomic():
                    snapshot = BalanceSnapshot.objects.create(
                        day=day, taken_at=taken_at, seen_transactions=seen, job_run=job_run
                    )
            except IntegrityError:
                # Another run took the day's snapshot since this one read the balances.
                return {"day": day.isoformat(), "already_taken": True}
            written = 0
            for start in range(first, last + 1, batch_size):
                written += _execute(_WALLETS_WRITE_SQL, [snapshot.pk, start, start + batch_size])
                report(written, total, "wallets written")
            _execute(_ACCOUNTS_WRITE_SQL, [snapshot.pk])
            totals = _totals(
                _one(
                    _WALLET_TOTALS_SQL.format(table="snapshot_stage_wallets", where=""),
                    [],
                ),
                _one(_ACCOUNT_TOTALS_OF_SNAPSHOT_SQL, [Asset.MONEY, snapshot.pk]),
            )
            BalanceSnapshot.objects.filter(pk=snapshot.pk).update(
                **{key: value for key, value in totals.items() if key != "money_held"}
            )
    # A run that failed leaves its temporary tables to its session's end, or its next run.
    for sql in _UNSTAGE_SQL:
        _execute(sql, [])
    return {
        "day": day.isoformat(),
        "already_taken": False,
        "snapshot_id": snapshot.pk,
        "taken_at": taken_at.isoformat(),
        "wallets_snapshotted": totals["wallets"],
        "accounts_snapshotted": totals["accounts"],
        **{key: value for key, value in totals.items() if key not in ("wallets", "accounts")},
    }


def _expired(day: date) -> list[BalanceSnapshot]:
    cutoff = day - timedelta(days=settings.BALANCE_SNAPSHOT_RETENTION_DAYS)
    return list(BalanceSnapshot.objects.filter(day__lt=cutoff).order_by("day").only("pk", "day"))


def _retention_apply(*, day: date, batch_size: int) -> dict:
    """Delete the expired snapshots' rows by wallet-id range, each batch its own transaction,
    then their accounts' rows and the snapshots themselves. Plain SQL: the ORM's cascade would
    load every row it deletes."""
    expired = _expired(day)
    rows = 0
    for snapshot in expired:
        first, last = _one(
            "SELECT COALESCE(MIN(wallet_id), 0), COALESCE(MAX(wallet_id), -1) "
            "FROM ledger_walletsnapshot WHERE snapshot_id = %s",
            [snapshot.pk],
        )
        for start in range(first, last + 1, batch_size):
            rows += _execute(
                "DELETE FROM ledger_walletsnapshot "
                "WHERE snapshot_id = %s AND wallet_id >= %s AND wallet_id < %s",
                [snapshot.pk, start, start + batch_size],
            )
        with transaction.atomic():
            rows += _execute(
                "DELETE FROM ledger_accountsnapshot WHERE snapshot_id = %s", [snapshot.pk]
            )
            _execute("DELETE FROM ledger_balancesnapshot WHERE id = %s", [snapshot.pk])
    return {
        "snapshots_deleted": len(expired),
        "snapshot_rows_deleted": rows,
        "days_deleted": [snapshot.day.isoformat() for snapshot in expired][:10],
    }
