"""The balance checks: debits equal credits, cached balances equal the replay of the transfers
and the latest snapshot plus the transfers after it, each transfer on accounts of its asset, no
negative balance."""

from __future__ import annotations

from django.db import connection

from ledger.models import Asset, BalanceSnapshot
from ledger.services.reconcile.queries import check, rows, wallet_union
from ledger.services.transfers import WALLET_BUCKETS

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


def _snapshot_check() -> dict:
    """The latest snapshot plus the transfers after it equals the cached balances now: a
    tampered snapshot row or cached balance shows, and so would a booking that moved balances
    without its transfer since the snapshot."""
    name = "balances_equal_snapshot_plus_later_transfers"
    snapshot = BalanceSnapshot.objects.order_by("-day").only("day").first()
    if snapshot is None:
        return {**check(name, []), "note": "no balance snapshot yet"}
    later = _LATER_POSTGRES if connection.vendor == "postgresql" else _LATER_ELSEWHERE
    sql = _SNAPSHOT_BALANCES_SQL.format(
        later=later,
        snapshot_buckets=wallet_union(_SNAPSHOT_BUCKET_SQL),
        wallet_buckets=wallet_union(_WALLET_BUCKET_SQL),
    )
    differences = [
        {"account": account, "expected": int(expected), "actual": int(actual)}
        for account, expected, actual in rows(sql)
    ]
    return {**check(name, differences), "note": f"snapshot of {snapshot.day.isoformat()}"}


def balance_checks() -> list[dict]:
    """The balance checks' outcomes, in the order they are reported."""
    mismatched_balances = [
        {"account": account, "expected": int(expected), "actual": int(actual)}
        for account, expected, actual in rows(
            _BALANCES_SQL.format(wallet_buckets=wallet_union(_WALLET_BUCKET_SQL))
        )
    ]
    asset_totals = {
        asset: int(total or 0)
        for asset, total in rows(
            _ASSET_TOTALS_SQL.format(
                wallet_assets=wallet_union(
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
        for _id, reference, asset, debit, credit in rows(
            _ASSET_MISMATCH_SQL.format(conditions=mismatch_conditions)
        )
    ]
    negative = [
        {"account": row[0], "expected": ">= 0", "actual": min(row[1:])}
        for row in rows(_NEGATIVE_SQL)
    ]
    return [
        check("debits_equal_credits_per_asset", unbalanced_assets),
        check("cached_balances_equal_transfer_replay", mismatched_balances),
        check("transfers_use_accounts_of_their_asset", wrong_asset),
        check("no_negative_balances", negative),
        _snapshot_check(),
    ]
