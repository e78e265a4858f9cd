"""Reconciliation: proving the cached balances and the money events against the transfers.

Every check is one set-based query; differences are returned (capped) with their totals.
"""

from __future__ import annotations

from django.db import connection

from ledger.models import Asset, TransferKind
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

_ESCROW_BOOKINGS_SQL = """
SELECT escrow.id, escrow.status, COUNT(transfer.id) AS booked
FROM ledger_escrow AS escrow
LEFT JOIN ledger_transfer AS transfer
       ON transfer.reference = 'escrow-release:' || escrow.id
GROUP BY escrow.id, escrow.status
HAVING COUNT(transfer.id) <> CASE WHEN escrow.status = %s THEN 1 ELSE 0 END
ORDER BY escrow.id
"""

_POOL_PAYOUTS_SQL = """
SELECT debit_account, COUNT(*) FROM ledger_transfer
WHERE kind = %s
GROUP BY debit_account
HAVING COUNT(*) > 1
ORDER BY debit_account
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
    escrow_bookings = [
        {
            "account": f"escrow {escrow_id} ({status})",
            "expected": 1 if status == EscrowStatus.RELEASED else 0,
            "actual": booked,
        }
        for escrow_id, status, booked in _rows(_ESCROW_BOOKINGS_SQL, [EscrowStatus.RELEASED])
    ]
    double_payouts = [
        {"account": account, "expected": 1, "actual": count}
        for account, count in _rows(_POOL_PAYOUTS_SQL, [TransferKind.PRIZE_PAYOUT])
    ]
    transfer_totals = {
        asset: {"transfers": count, "amount": int(amount or 0)}
        for asset, count, amount in _rows(_TRANSFER_TOTALS_SQL)
    }
    checks = [
        _check("debits_equal_credits_per_asset", unbalanced_assets),
        _check("cached_balances_equal_transfer_replay", mismatched_balances),
        _check("transfers_use_accounts_of_their_asset", wrong_asset),
        _check("no_negative_balances", negative),
        _check("escrows_booked_exactly_once", escrow_bookings),
        _check("pools_paid_at_most_once", double_payouts),
    ]
    return {
        "clean": all(check["ok"] for check in checks),
        "checks": checks,
        "transfer_totals": transfer_totals,
    }
