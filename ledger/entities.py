"""The ledger rows jobs change, and the runs each one names: what run history filters by."""

from __future__ import annotations

from django.db.models import Q

from jobs.entities import register_entity_runs
from ledger.models import DonationCycle, Escrow, Match, Transfer
from ledger.services.transfers import WALLET_BUCKETS, wallet_account


def _transfer_runs(transfers) -> set[int]:
    return set(
        transfers.filter(job_run__isnull=False).values_list("job_run_id", flat=True).distinct()
    )


def escrow_runs(pk: int) -> set[int]:
    """The run that released it, and those that booked its release and coin transfers."""
    released = Escrow.objects.filter(pk=pk, released_by_run__isnull=False)
    return set(released.values_list("released_by_run_id", flat=True)) | _transfer_runs(
        Transfer.objects.filter(reference__in=[f"escrow-release:{pk}", f"escrow-coins:{pk}"])
    )


def wallet_runs(pk: int) -> set[int]:
    """The runs that booked a transfer into or out of one of its accounts, and those that
    lowered its trust score by defaulting one of its cycles."""
    accounts = [wallet_account(pk, bucket) for bucket in WALLET_BUCKETS]
    return _transfer_runs(
        Transfer.objects.filter(Q(debit_account__in=accounts) | Q(credit_account__in=accounts))
    ) | _named_runs(DonationCycle.objects.filter(wallet=pk), "defaulted_by_run")


def cycle_runs(pk: int) -> set[int]:
    """The run that released its donation's escrow (which obligated it), and those that
    reminded and defaulted it."""
    released = Escrow.objects.filter(donation__cycle=pk)
    cycle = DonationCycle.objects.filter(pk=pk)
    return (
        _named_runs(released, "released_by_run")
        | _named_runs(cycle, "reminded_by_run")
        | _named_runs(cycle, "defaulted_by_run")
    )


def match_runs(pk: int) -> set[int]:
    """The run that expired it."""
    return _named_runs(Match.objects.filter(pk=pk), "expired_by_run")


def _named_runs(rows, field: str) -> set[int]:
    return set(rows.exclude(**{field: None}).values_list(f"{field}_id", flat=True))


def register_ledger_entities() -> None:
    register_entity_runs("escrow", escrow_runs, label="escrow")
    register_entity_runs("wallet", wallet_runs, label="wallet")
    register_entity_runs("cycle", cycle_runs, label="donation cycle")
    register_entity_runs("match", match_runs, label="match")
