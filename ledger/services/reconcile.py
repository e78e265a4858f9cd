"""Reconciliation: proving the cached balances and the money events against the transfers.

Every check is one set-based query; differences are returned (capped) with their totals. The
bookings of a donation, an escrow, a pool or a milestone are counted by the object their
subject columns name, whatever their reference says: a second release booked under another
reference, with the balances moved to match, is still a second release.
"""

from __future__ import annotations

from django.apps import apps
from django.db import connection

from ledger.models import (
    SUBJECT_OF_KIND,
    Asset,
    BalanceSnapshot,
    Donation,
    Escrow,
    Milestone,
    TransferKind,
    TransferSubject,
)
from ledger.services.transfers import WALLET_BUCKETS
from ledger.statuses import EscrowStatus

MAX_REPORTED = 100

# Every account's balance as cached (wallet columns, system accounts) and as replayed from
# the transfers, side by side.
_BALANCES_SQL = """
WITH movements AS (
    SELECT credit_account AS account, amount FROM ledger_transfer
    UNION ALL
    SELECT debit_account AS account, -amount FROM ledger_transfer
),
replayed AS (
    SELECT account, SUM(amount) AS balance FROM movements GROUP BY account
),
cached AS (
    {wallet_buckets}
    UNION ALL
    SELECT code AS account, balance FROM ledger_systemaccount
)
SELECT COALESCE(cached.account, replayed.account) AS account,
       COALESCE(replayed.balance, 0) AS expected,
       COALESCE(cached.balance, 0) AS actual
FROM cached FULL OUTER JOIN replayed ON cached.account = replayed.account
WHERE COALESCE(cached.balance, 0) <> COALESCE(replayed.balance, 0)
ORDER BY 1
"""

_WALLET_BUCKET_SQL = (
    "SELECT 'wallet:' || id || ':{bucket}' AS account, {column} AS balance FROM ledger_wallet"
)

_ASSET_TOTALS_SQL = """
WITH accounts AS (
    {wallet_assets}
    UNION ALL
    SELECT asset, balance FROM ledger_systemaccount
)
SELECT asset, SUM(balance) FROM accounts GROUP BY asset
"""

_TRANSFER_TOTALS_SQL = "SELECT asset, COUNT(*), SUM(amount) FROM ledger_transfer GROUP BY asset"

# A transfer whose wallet account holds another asset than the transfer moves.
_ASSET_MISMATCH_SQL = """
SELECT id, reference, asset, debit_account, credit_account FROM ledger_transfer
WHERE {conditions}
ORDER BY reference
"""

_NEGATIVE_SQL = """
SELECT 'wallet:' || id AS account, spendable_balance, receivable_balance, charity_coins
FROM ledger_wallet
WHERE spendable_balance < 0 OR receivable_balance < 0 OR charity_coins < 0
UNION ALL
SELECT code, balance, 0, 0 FROM ledger_systemaccount WHERE balance < 0 AND NOT allow_negative
"""

# The latest snapshot's balances plus the net of the transfers after it, against the cached
# balances now. "After" is a transfer whose transaction the snapshot did not see ({later}).
_SNAPSHOT_BALANCES_SQL = """
WITH snapshot AS (
    SELECT id, taken_at, seen_transactions FROM ledger_balancesnapshot
    ORDER BY day DESC LIMIT 1
),
later AS (
    SELECT transfer.debit_account, transfer.credit_account, transfer.amount
    FROM ledger_transfer AS transfer, snapshot
    WHERE {later}
),
movements AS (
    SELECT credit_account AS account, amount FROM later
    UNION ALL
    SELECT debit_account AS account, -amount FROM later
),
moved AS (
    SELECT account, SUM(amount) AS amount FROM movements GROUP BY account
),
snapped AS (
    {snapshot_buckets}
    UNION ALL
    SELECT account.code AS account, row.balance
    FROM ledger_accountsnapshot AS row
    JOIN ledger_systemaccount AS account ON account.id = row.account_id
    WHERE row.snapshot_id = (SELECT id FROM snapshot)
),
cached AS (
    {wallet_buckets}
    UNION ALL
    SELECT code AS account, balance FROM ledger_systemaccount
),
expected AS (
    SELECT COALESCE(snapped.account, moved.account) AS account,
           COALESCE(snapped.balance, 0) + COALESCE(moved.amount, 0) AS balance
    FROM snapped FULL OUTER JOIN moved ON snapped.account = moved.account
)
SELECT COALESCE(cached.account, expected.account) AS account,
       COALESCE(expected.balance, 0) AS expected,
       COALESCE(cached.balance, 0) AS actual
FROM cached FULL OUTER JOIN expected ON cached.account = expected.account
WHERE COALESCE(cached.balance, 0) <> COALESCE(expected.balance, 0)
ORDER BY 1
"""

_SNAPSHOT_BUCKET_SQL = (
    "SELECT 'wallet:' || wallet_id || ':{bucket}' AS account, {column} AS balance "
    "FROM ledger_walletsnapshot WHERE snapshot_id = (SELECT id FROM snapshot)"
)

# On PostgreSQL the snapshot names the transactions it saw; a transfer booked before the
# column existed has no transaction id, and a snapshot taken inside a caller's transaction
# names none (see `ledger.services.snapshots`): those are after it when made after it.
_LATER_POSTGRES = (
    "CASE WHEN transfer.xact IS NULL OR snapshot.seen_transactions = '' "
    "THEN transfer.created_at > snapshot.taken_at ELSE NOT "
    "pg_visible_in_snapshot(transfer.xact::text::xid8, snapshot.seen_transactions::pg_snapshot)"
    " END"
)
_LATER_ELSEWHERE = "transfer.created_at > snapshot.taken_at"

# Per business object, its bookings of one kind, counted and summed by the subject columns
# (whatever their reference says); the rows returned are the objects that are wrong.
_DONATION_BOOKINGS_SQL = """
SELECT donation.id, donation.amount, COUNT(transfer.id), COALESCE(SUM(transfer.amount), 0)
FROM ledger_donation AS donation
LEFT JOIN ledger_transfer AS transfer
       ON transfer.subject_type = %(subject)s AND transfer.subject_id = donation.id
      AND transfer.kind = %(kind)s
GROUP BY donation.id, donation.amount
HAVING COUNT(transfer.id) <> 1 OR COALESCE(SUM(transfer.amount), 0) <> donation.amount
ORDER BY donation.id
"""

_ESCROW_BOOKINGS_SQL = """
SELECT escrow.id, escrow.status, escrow.amount,
       COALESCE(SUM(CASE WHEN transfer.kind = %(release)s THEN 1 ELSE 0 END), 0) AS releases,
       COALESCE(SUM(CASE WHEN transfer.kind = %(release)s THEN transfer.amount ELSE 0 END), 0),
       COALESCE(SUM(CASE WHEN transfer.kind = %(award)s THEN 1 ELSE 0 END), 0) AS awards
FROM ledger_escrow AS escrow
LEFT JOIN ledger_transfer AS transfer
       ON transfer.subject_type = %(subject)s AND transfer.subject_id = escrow.id
      AND transfer.kind IN (%(release)s, %(award)s)
GROUP BY escrow.id, escrow.status, escrow.amount
HAVING CASE WHEN escrow.status = %(released)s
            THEN COALESCE(SUM(CASE WHEN transfer.kind = %(release)s THEN 1 ELSE 0 END), 0) <> 1
              OR COALESCE(SUM(CASE WHEN transfer.kind = %(release)s THEN transfer.amount
                                   ELSE 0 END), 0) <> escrow.amount
              OR COALESCE(SUM(CASE WHEN transfer.kind = %(award)s THEN 1 ELSE 0 END), 0) > 1
            ELSE COUNT(transfer.id) <> 0 END
ORDER BY escrow.id
"""

# A pool pays its prize once when finalized with a winner and money in it, and never else.
_POOL_PAYOUTS_SQL = """
SELECT pool.id, pool.status, pool.amount, COUNT(transfer.id), COALESCE(SUM(transfer.amount), 0),
       CASE WHEN pool.status = %(finalized)s AND pool.winner_id IS NOT NULL AND pool.amount > 0
            THEN 1 ELSE 0 END AS owed
FROM {pools} AS pool
LEFT JOIN ledger_transfer AS transfer
       ON transfer.subject_type = %(subject)s AND transfer.subject_id = pool.id
      AND transfer.kind = %(kind)s
GROUP BY pool.id, pool.status, pool.amount, pool.winner_id
HAVING COUNT(transfer.id) <> CASE WHEN pool.status = %(finalized)s
                                   AND pool.winner_id IS NOT NULL AND pool.amount > 0
                                  THEN 1 ELSE 0 END
    OR (COUNT(transfer.id) = 1 AND COALESCE(SUM(transfer.amount), 0) <> pool.amount)
ORDER BY pool.id
"""

_MILESTONE_BONUSES_SQL = """
SELECT milestone.id, milestone.bonus_coins, COUNT(transfer.id),
       COALESCE(SUM(transfer.amount), 0)
FROM ledger_milestone AS milestone
LEFT JOIN ledger_transfer AS transfer
       ON transfer.subject_type = %(subject)s AND transfer.subject_id = milestone.id
      AND transfer.kind = %(kind)s
GROUP BY milestone.id, milestone.bonus_coins
HAVING COUNT(transfer.id) <> CASE WHEN milestone.bonus_coins > 0 THEN 1 ELSE 0 END
    OR COALESCE(SUM(transfer.amount), 0) <> milestone.bonus_coins
ORDER BY milestone.id
"""

# A booking of a kind that belongs to an object, naming no object of that type that exists.
_UNNAMED_BOOKINGS_SQL = """
SELECT transfer.reference, transfer.kind, transfer.subject_type, transfer.subject_id
FROM ledger_transfer AS transfer
{joins}
WHERE transfer.kind IN ({kinds})
  AND (transfer.subject_type <> CASE transfer.kind {expected_types} END
       OR COALESCE({found}) IS NULL)
ORDER BY transfer.reference
"""


def _rows(sql: str, params: list | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


def _wallet_union(template: str) -> str:
    return "\nUNION ALL\n".join(
        template.format(bucket=bucket, column=column, asset=asset)
        for bucket, (column, asset) in WALLET_BUCKETS.items()
    )


def _check(name: str, differences: list[dict]) -> dict:
    return {
        "check": name,
        "ok": not differences,
        "differences": len(differences),
        "sample": differences[:MAX_REPORTED],
    }


def _snapshot_check() -> dict:
    """The latest snapshot plus the transfers after it equals the cached balances now: a
    tampered snapshot row or cached balance shows, and so would a booking that moved balances
    without its transfer since the snapshot."""
    name = "balances_equal_snapshot_plus_later_transfers"
    snapshot = BalanceSnapshot.objects.order_by("-day").only("day").first()
    if snapshot is None:
        return {**_check(name, []), "note": "no balance snapshot yet"}
    later = _LATER_POSTGRES if connection.vendor == "postgresql" else _LATER_ELSEWHERE
    sql = _SNAPSHOT_BALANCES_SQL.format(
        later=later,
        snapshot_buckets=_wallet_union(_SNAPSHOT_BUCKET_SQL),
        wallet_buckets=_wallet_union(_WALLET_BUCKET_SQL),
    )
    differences = [
        {"account": account, "expected": int(expected), "actual": int(actual)}
        for account, expected, actual in _rows(sql)
    ]
    return {**_check(name, differences), "note": f"snapshot of {snapshot.day.isoformat()}"}


def _donation_bookings() -> list[dict]:
    params = {"subject": TransferSubject.DONATION, "kind": TransferKind.DONATION}
    return [
        {
            "account": f"donation {donation_id}",
            "expected": f"1 {TransferKind.DONATION} of {amount}",
            "actual": f"{count} of {int(booked)}",
        }
        for donation_id, amount, count, booked in _rows(_DONATION_BOOKINGS_SQL, params)
    ]


def _escrow_bookings() -> list[dict]:
    params = {
        "subject": TransferSubject.ESCROW,
        "release": TransferKind.ESCROW_RELEASE,
        "award": TransferKind.COIN_AWARD,
        "released": EscrowStatus.RELEASED,
    }
    differences = []
    for escrow_id, status, amount, releases, released, awards in _rows(
        _ESCROW_BOOKINGS_SQL, params
    ):
        if status == EscrowStatus.RELEASED:
            expected = f"1 {TransferKind.ESCROW_RELEASE} of {amount}, at most 1 coin_award"
        else:
            expected = f"no {TransferKind.ESCROW_RELEASE}, no {TransferKind.COIN_AWARD}"
        differences.append(
            {
                "account": f"escrow {escrow_id} ({status})",
                "expected": expected,
                "actual": f"{releases} {TransferKind.ESCROW_RELEASE} of {int(released)}, "
                f"{awards} {TransferKind.COIN_AWARD}",
            }
        )
    return differences


def _pool_payouts() -> list[dict]:
    pools = apps.get_model("leaderboard", "PrizePool")._meta.db_table
    params = {
        "subject": TransferSubject.POOL,
        "kind": TransferKind.PRIZE_PAYOUT,
        "finalized": "finalized",
    }
    return [
        {
            "account": f"pool {pool_id} ({status})",
            "expected": f"{owed} {TransferKind.PRIZE_PAYOUT}" + (f" of {amount}" if owed else ""),
            "actual": f"{count} of {int(paid)}",
        }
        for pool_id, status, amount, count, paid, owed in _rows(
            _POOL_PAYOUTS_SQL.format(pools=pools), params
        )
    ]


def _milestone_bonuses() -> list[dict]:
    params = {"subject": TransferSubject.MILESTONE, "kind": TransferKind.MILESTONE_BONUS}
    return [
        {
            "account": f"milestone {milestone_id}",
            "expected": f"{1 if bonus else 0} {TransferKind.MILESTONE_BONUS} of {bonus}",
            "actual": f"{count} of {int(paid)}",
        }
        for milestone_id, bonus, count, paid in _rows(_MILESTONE_BONUSES_SQL, params)
    ]


def _subject_tables() -> dict[str, str]:
    return {
        TransferSubject.DONATION: Donation._meta.db_table,
        TransferSubject.ESCROW: Escrow._meta.db_table,
        TransferSubject.POOL: apps.get_model("leaderboard", "PrizePool")._meta.db_table,
        TransferSubject.MILESTONE: Milestone._meta.db_table,
    }


def _unnamed_bookings() -> list[dict]:
    # The values interpolated are the code's own choices and table names, never input.
    tables = _subject_tables()
    joins = "\n".join(
        f"LEFT JOIN {table} AS subject_{subject} ON transfer.subject_type = '{subject}' "
        f"AND subject_{subject}.id = transfer.subject_id"
        for subject, table in tables.items()
    )
    sql = _UNNAMED_BOOKINGS_SQL.format(
        joins=joins,
        kinds=", ".join(f"'{kind}'" for kind in SUBJECT_OF_KIND),
        expected_types=" ".join(
            f"WHEN '{kind}' THEN '{subject}'" for kind, subject in SUBJECT_OF_KIND.items()
        ),
        found=", ".join(f"subject_{subject}.id" for subject in tables),
    )
    return [
        {
            "account": reference,
            "expected": f"names its {SUBJECT_OF_KIND[kind]}, which exists",
            "actual": f"{subject_type} {subject_id}" if subject_type else "no object",
        }
        for reference, kind, subject_type, subject_id in _rows(sql)
    ]


def ledger_reconcile() -> dict:
    """Run every reconciliation check and return their outcomes and the totals checked."""
    mismatched_balances = [
        {"account": account, "expected": int(expected), "actual": int(actual)}
        for account, expected, actual in _rows(
            _BALANCES_SQL.format(wallet_buckets=_wallet_union(_WALLET_BUCKET_SQL))
        )
    ]
    asset_totals = {
        asset: int(total or 0)
        for asset, total in _rows(
            _ASSET_TOTALS_SQL.format(
                wallet_assets=_wallet_union(
                    "SELECT '{asset}' AS asset, {column} AS balance FROM ledger_wallet"
                )
            )
        )
    }
    unbalanced_assets = [
        {"account": f"all {asset} accounts", "expected": 0, "actual": asset_totals.get(asset, 0)}
        for asset in Asset.values
        if asset_totals.get(asset, 0) != 0
    ]
    mismatch_conditions = " OR ".join(
        f"((debit_account LIKE 'wallet:%%:{bucket}' OR credit_account LIKE 'wallet:%%:{bucket}')"
        f" AND asset <> '{asset}')"
        for bucket, (_column, asset) in WALLET_BUCKETS.items()
    )
    wrong_asset = [
        {"account": f"{debit} -> {credit}", "expected": f"not {asset}", "actual": reference}
        for _id, reference, asset, debit, credit in _rows(
            _ASSET_MISMATCH_SQL.format(conditions=mismatch_conditions)
        )
    ]
    negative = [
        {"account": row[0], "expected": ">= 0", "actual": min(row[1:])}
        for row in _rows(_NEGATIVE_SQL)
    ]
    checks = [
        _check("debits_equal_credits_per_asset", unbalanced_assets),
        _check("cached_balances_equal_transfer_replay", mismatched_balances),
        _check("transfers_use_accounts_of_their_asset", wrong_asset),
        _check("no_negative_balances", negative),
        _snapshot_check(),
        _check("donations_booked_once", _donation_bookings()),
        _check("escrows_booked_by_their_status", _escrow_bookings()),
        _check("pools_paid_once_when_won", _pool_payouts()),
        _check("milestones_paid_their_bonus_once", _milestone_bonuses()),
        _check("bookings_name_their_object", _unnamed_bookings()),
    ]
    transfer_totals = {
        asset: {"transfers": count, "amount": int(amount or 0)}
        for asset, count, amount in _rows(_TRANSFER_TOTALS_SQL)
    }
    return {
        "clean": all(check["ok"] for check in checks),
        "checks": checks,
        "transfer_totals": transfer_totals,
    }
