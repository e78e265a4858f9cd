"""Reads of the ledger."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Min, Sum
from django.utils import timezone

from jobs.panels import Figure, Panel, Trend, TrendPoint, duration_words
from jobs.panels import money_text as engine_money_text
from ledger.models import BalanceSnapshot, Escrow
from ledger.statuses import EscrowStatus


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


def money_text(amount: int) -> str:
    """Kobo as a person reads naira: 123456 -> "₦1,234.56" (the engine's formatter, so run
    summaries and the ledger's own pages read alike)."""
    return engine_money_text(amount)


def escrow_release_lag_panel(*, as_of: datetime) -> Panel:
    """The dashboard's business-lag panel: escrows past their hold, and how long they wait;
    alarming once the oldest waits past ESCROW_LAG_ALERT_MINUTES, as monitor_business_lag
    alerts."""
    lag = escrow_release_lag(as_of=as_of)
    threshold = settings.ESCROW_LAG_ALERT_MINUTES * 60
    return Panel(
        title="Escrows overdue for release",
        figures=[
            Figure(
                f"{lag.overdue_count:,}",
                "escrow overdue for release"
                if lag.overdue_count == 1
                else "escrows overdue for release",
            ),
            Figure(money_text(lag.overdue_amount), "waiting for release"),
            Figure(duration_words(lag.oldest_overdue_seconds), "oldest overdue by"),
            Figure(duration_words(threshold), "alert threshold"),
        ],
        alarming=lag.oldest_overdue_seconds > threshold,
    )


TREND_DAYS = 30


def money_held_trend(*, as_of: datetime) -> Trend:
    """The money the platform held each day of the last 30 (wallets' spendable and receivable
    balances, and the pools'), from the daily balance snapshots; None on a day without one."""
    last = timezone.localdate(as_of)
    first = last - timedelta(days=TREND_DAYS - 1)
    held = dict(
        BalanceSnapshot.objects.filter(day__gte=first, day__lte=last).values_list(
            "day", F("total_spendable") + F("total_receivable") + F("pools_money")
        )
    )
    return Trend(
        title="Money held",
        points=[
            TrendPoint(day, held.get(day))
            for day in (first + timedelta(days=offset) for offset in range(TREND_DAYS))
        ],
        money=True,
        note="from the daily balance snapshots (snapshot_balances, 00:05)",
    )
