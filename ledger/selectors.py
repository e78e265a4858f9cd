"""Reads of the ledger."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from django.db.models import Count, Min, Sum

from ledger.models import Escrow, EscrowStatus


@dataclasses.dataclass(frozen=True)
class EscrowLag:
    """Escrows past their hold and still holding: money users are waiting for."""

    overdue_count: int
    overdue_amount: int
    oldest_overdue_seconds: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def escrow_release_lag(*, as_of: datetime) -> EscrowLag:
    totals = Escrow.objects.filter(status=EscrowStatus.HOLDING, hold_until__lte=as_of).aggregate(
        count=Count("pk"), amount=Sum("amount"), oldest=Min("hold_until")
    )
    oldest = totals["oldest"]
    return EscrowLag(
        overdue_count=totals["count"],
        overdue_amount=totals["amount"] or 0,
        oldest_overdue_seconds=(as_of - oldest).total_seconds() if oldest else 0.0,
    )
