"""Leaderboard factories and builders that go through the leaderboard's and ledger's services."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import factory
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone
from factory.django import DjangoModelFactory

from jobs.models import JobRun
from leaderboard.models import (
    ArchivedScore,
    Boost,
    BoostKind,
    GameSession,
    LeaderboardEntry,
    PrizePool,
    Score,
)
from leaderboard.services.games import game_session_complete, game_session_start
from leaderboard.services.pools import prize_pool_enter, prize_pool_open
from ledger.models import DonationCycle, Transfer, Wallet
from ledger.services.donations import cycle_fulfil
from ledger.services.escrows import escrows_release_due
from tests.factories import HOLD, UserFactory, donation_at, funded_wallet

# A Monday, so daily and weekly periods both start here.
MONDAY = datetime(2026, 3, 2, tzinfo=UTC)


class BoostFactory(DjangoModelFactory):
    class Meta:
        model = Boost

    user = factory.SubFactory(UserFactory)
    kind = BoostKind.MULTIPLIER
    value = Decimal("1.50")
    starts_at = factory.LazyFunction(lambda: MONDAY - timedelta(days=7))
    expires_at = factory.LazyFunction(lambda: MONDAY + timedelta(days=7))


class LeaderboardEntryFactory(DjangoModelFactory):
    class Meta:
        model = LeaderboardEntry

    user = factory.SubFactory(UserFactory)
    rank = factory.Sequence(lambda n: n + 1)
    score = factory.LazyAttribute(lambda entry: Decimal(100_000 - entry.rank))
    updated_at = factory.LazyFunction(timezone.now)


def player():
    """A user with a funded wallet, so prizes can be paid to them and fees taken."""
    return funded_wallet().user


def score_at(*, user, points: int, at: datetime, game: str = "snake", minutes: int = 5) -> Score:
    """A score achieved at `at`, from a session started `minutes` earlier and completed."""
    session = game_session_start(player=user, game=game, at=at - timedelta(minutes=minutes))
    return game_session_complete(session=session, points=points, at=at)


def active_session(*, user, started_at: datetime, game: str = "snake") -> GameSession:
    return game_session_start(player=user, game=game, at=started_at)


def orphan_score(*, user, points: int, at: datetime, game: str = "snake") -> Score:
    return Score.objects.create(player=user, game=game, points=points, achieved_at=at)


def funded_pool(*, game: str, period: str, start: date, fees: int = 0, fee: int = 500) -> PrizePool:
    """A pool with `fees` entry fees of `fee` kobo, each paid by a new player's wallet."""
    pool = prize_pool_open(game=game, period=period, period_start=start)
    at = datetime.combine(start, datetime.min.time(), tzinfo=UTC) + timedelta(minutes=1)
    for n in range(fees):
        prize_pool_enter(pool=pool, wallet=funded_wallet(), fee=fee, reference=f"t{n}", at=at)
    pool.refresh_from_db()
    return pool


def fulfilled_cycle(
    *, wallet: Wallet, donor: Wallet, obligated_at: datetime, days: Decimal | int
) -> DonationCycle:
    """A cycle obligated at `obligated_at` and fulfilled `days` later."""
    donation = donation_at(
        at=obligated_at - HOLD - timedelta(seconds=1), donor=donor, recipient=wallet
    )
    escrows_release_due(as_of=obligated_at)
    cycle = DonationCycle.objects.get(donation=donation)
    # The release stamps the wall-clock time; the tests need exact completion times.
    DonationCycle.objects.filter(pk=cycle.pk).update(
        obligated_at=obligated_at,
        due_at=obligated_at + timedelta(days=settings.CYCLE_DUE_DAYS),
    )
    cycle.refresh_from_db()
    cycle_fulfil(cycle=cycle, at=obligated_at + timedelta(days=float(days)))
    return cycle


def finished_run(*, job: str, status: str, finished_at: datetime, **fields) -> JobRun:
    return JobRun.objects.create(
        job=job,
        trigger="cli",
        as_of=finished_at,
        status=status,
        started_at=finished_at,
        finished_at=finished_at,
        **fields,
    )


def paid_prizes(pool: PrizePool) -> int:
    return (
        Transfer.objects.filter(reference=f"prize-payout:{pool.pk}").aggregate(total=Sum("amount"))[
            "total"
        ]
        or 0
    )


def score_rows() -> dict[str, dict[int, tuple]]:
    """Every live and archived score by id, with the fields both tables share."""
    fields = ("player_id", "game", "points", "achieved_at")
    live = {row[0]: row[1:] for row in Score.objects.values_list("pk", *fields)}
    archived = {row[0]: row[1:] for row in ArchivedScore.objects.values_list("pk", *fields)}
    return {"live": live, "archived": archived}
