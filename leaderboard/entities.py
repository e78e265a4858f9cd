"""The leaderboard rows jobs change, and the runs each one names: what run history filters by."""

from __future__ import annotations

from django.db.models import Q

from jobs.entities import register_entity_runs
from leaderboard.models import PrizePool
from leaderboard.services.pools import pool_account
from ledger.models import Transfer


def pool_runs(pk: int) -> set[int]:
    """The run that finalized it, and those that booked a transfer into or out of its
    account (its prize payout)."""
    finalized = PrizePool.objects.filter(pk=pk, finalized_by_run__isnull=False)
    account = pool_account(pk)
    transfers = Transfer.objects.filter(
        Q(debit_account=account) | Q(credit_account=account), job_run__isnull=False
    )
    return set(finalized.values_list("finalized_by_run_id", flat=True)) | set(
        transfers.values_list("job_run_id", flat=True).distinct()
    )


def register_leaderboard_entities() -> None:
    register_entity_runs("pool", pool_runs, label="prize pool")
