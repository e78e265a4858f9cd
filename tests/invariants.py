"""Ledger invariants checked after concurrency and fault tests."""

from collections import defaultdict

from django.db.models import Count, Sum

from ledger.models import Asset, Escrow, SystemAccount, Transfer, Wallet
from ledger.services.transfers import WALLET_BUCKETS
from ledger.statuses import EscrowStatus


def transfer_replay() -> dict[str, int]:
    balances: dict[str, int] = defaultdict(int)
    for row in Transfer.objects.values("credit_account").annotate(total=Sum("amount")):
        balances[row["credit_account"]] += row["total"]
    for row in Transfer.objects.values("debit_account").annotate(total=Sum("amount")):
        balances[row["debit_account"]] -= row["total"]
    return balances


def cached_balances() -> dict[str, int]:
    balances = {}
    for wallet in Wallet.objects.values("pk", *[column for column, _ in WALLET_BUCKETS.values()]):
        for bucket, (column, _asset) in WALLET_BUCKETS.items():
            balances[f"wallet:{wallet['pk']}:{bucket}"] = wallet[column]
    for code, balance in SystemAccount.objects.values_list("code", "balance"):
        balances[code] = balance
    return balances


def assert_ledger_consistent() -> None:
    """Cached balances equal the replay of transfers, every asset sums to zero, and every
    released escrow was booked exactly once (holding ones not at all)."""
    replay = transfer_replay()
    cached = cached_balances()
    differences = {
        code: (cached.get(code, 0), replay.get(code, 0))
        for code in set(replay) | set(cached)
        if cached.get(code, 0) != replay.get(code, 0)
    }
    assert not differences, f"cached != replay for {differences}"
    for asset in Asset.values:
        accounts = {code for code, held in _account_assets().items() if held == asset}
        assert sum(cached.get(code, 0) for code in accounts) == 0, f"{asset} not conserved"
    booked = dict(
        Transfer.objects.filter(kind="escrow_release")
        .values_list("reference")
        .annotate(count=Count("pk"))
        .values_list("reference", "count")
    )
    for escrow_id, status in Escrow.objects.values_list("pk", "status"):
        expected = 1 if status == EscrowStatus.RELEASED else 0
        assert booked.get(f"escrow-release:{escrow_id}", 0) == expected, escrow_id


def _account_assets() -> dict[str, str]:
    assets = {}
    for wallet_id in Wallet.objects.values_list("pk", flat=True):
        for bucket, (_column, asset) in WALLET_BUCKETS.items():
            assets[f"wallet:{wallet_id}:{bucket}"] = asset
    assets.update(SystemAccount.objects.values_list("code", "asset"))
    return assets
