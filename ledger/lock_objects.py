"""Row locks of the ledger, always taken in primary-key order so batches never deadlock."""

from collections.abc import Iterable

from ledger.models import SystemAccount, Wallet


def wallets_lock(wallet_ids: Iterable[int]) -> list[int]:
    ids = sorted(set(wallet_ids))
    return list(
        Wallet.objects.select_for_update()
        .filter(pk__any=ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def system_accounts_lock(codes: Iterable[str]) -> list[int]:
    return list(
        SystemAccount.objects.select_for_update()
        .filter(code__in=sorted(set(codes)))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
