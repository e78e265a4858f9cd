"""Deterministic leaderboard demo data with work due for every leaderboard job."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from leaderboard.models import (
    Boost,
    BoostKind,
    Game,
    GameSession,
    PoolPeriod,
    PrizePool,
    Score,
    SessionStatus,
)
from leaderboard.periods import period_bounds, period_start
from leaderboard.services.pools import pool_account
from ledger.models import Asset, TransferKind, TransferSubject
from ledger.services.transfers import TransferLine, transfers_book, wallet_account

CHUNK = 5_000
ENTRY_FEE = 100
# Entry fees are paid for the first sessions of each pool only, so a million-user seed books
# thousands of transfers, not millions.
MAX_ENTRIES_PER_POOL = 50
DAILY_POOL_DAYS = 3  # today's pools, plus yesterday's and the day before (a missed day)
SCORE_DAYS = 14


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


@transaction.atomic
def leaderboard_demo_seed(*, wallets, seed: int, now: datetime | None = None) -> dict:
    """Boosts (some expired), game sessions (some stale), scores (some orphaned, some old
    enough to archive) and prize pools (some from ended periods) for the given wallets."""
    now = now or timezone.now()
    rng = random.Random(f"leaderboard-{seed}")
    players = list(wallets.order_by("pk").values_list("pk", "user_id", "spendable_balance"))
    counts: dict[str, int] = defaultdict(int)

    boosts = []
    for _wallet_id, user_id, _balance in players:
        if rng.random() >= 0.4:
            continue
        kind = BoostKind.MULTIPLIER if rng.random() < 0.5 else BoostKind.POINTS
        value = (
            Decimal(rng.randrange(110, 201)) / 100
            if kind == BoostKind.MULTIPLIER
            else Decimal(rng.randrange(10, 501))
        )
        starts_at = now - timedelta(days=rng.randrange(1, 10))
        expired = rng.random() < 0.25
        expires_at = (
            now - timedelta(minutes=rng.randrange(1, 24 * 60))
            if expired
            else now + timedelta(days=rng.randrange(1, 14))
        )
        counts["boosts_expired_due"] += expired
        boosts.append(
            Boost(
                user_id=user_id, kind=kind, value=value, starts_at=starts_at, expires_at=expires_at
            )
        )
    Boost.objects.bulk_create(boosts, batch_size=CHUNK)

    expiry = timedelta(minutes=settings.SESSION_EXPIRY_MINUTES)
    archive_age = timedelta(days=settings.LEADERBOARD_ARCHIVE_AGE_DAYS)
    sessions: list[GameSession] = []
    points: list[int | None] = []
    for _wallet_id, user_id, _balance in players:
        for _ in range(2):
            game = rng.choice(Game.values)
            started = now - timedelta(minutes=rng.randrange(60, SCORE_DAYS * 24 * 60))
            if rng.random() < 0.1:
                started -= archive_age
                counts["scores_old_enough_to_archive"] += 1
            sessions.append(
                GameSession(
                    player_id=user_id,
                    game=game,
                    status=SessionStatus.COMPLETED,
                    started_at=started,
                    ended_at=started + timedelta(minutes=rng.randrange(1, 20)),
                )
            )
            points.append(rng.randrange(0, 100_001, 10))
        roll = rng.random()
        if roll < 0.1:
            stale = roll < 0.05
            started = now - (
                expiry + timedelta(minutes=rng.randrange(1, 300))
                if stale
                else timedelta(minutes=rng.randrange(0, int(expiry.total_seconds() // 60)))
            )
            counts["sessions_stale"] += stale
            sessions.append(
                GameSession(player_id=user_id, game=rng.choice(Game.values), started_at=started)
            )
            points.append(None)
    GameSession.objects.bulk_create(sessions, batch_size=CHUNK)
    scores = [
        Score(
            player_id=session.player_id,
            game=session.game,
            points=score,
            achieved_at=session.ended_at,
            session=session,
        )
        for session, score in zip(sessions, points, strict=True)
        if score is not None
    ]
    for _wallet_id, user_id, _balance in players:
        if rng.random() < 0.03:
            scores.append(
                Score(
                    player_id=user_id,
                    game=rng.choice(Game.values),
                    points=rng.randrange(0, 100_001, 10),
                    achieved_at=now - timedelta(minutes=rng.randrange(1, SCORE_DAYS * 24 * 60)),
                )
            )
            counts["scores_orphaned"] += 1
    Score.objects.bulk_create(scores, batch_size=CHUNK)

    pools = _seed_pools(now=now)
    counts["pools_ended"] = sum(
        len(by_game)
        for (period, start), by_game in pools.items()
        if period_bounds(period, start)[1] <= now
    )
    counts["pool_entries"] = _seed_entries(
        pools=pools, sessions=sessions, players=players, seed=seed
    )
    return {
        "boosts": len(boosts),
        "game_sessions": len(sessions),
        "scores": len(scores),
        "prize_pools": sum(len(by_game) for by_game in pools.values()),
        **counts,
    }


def _seed_pools(*, now: datetime) -> dict[tuple[str, date], dict[str, PrizePool]]:
    """Daily pools for today and the days before, weekly pools for this and last week (pools
    are shared by every seed in the database)."""
    today = period_start(PoolPeriod.DAILY, now)
    this_week = period_start(PoolPeriod.WEEKLY, now)
    periods = [(PoolPeriod.DAILY, today - timedelta(days=n)) for n in range(DAILY_POOL_DAYS)]
    periods += [(PoolPeriod.WEEKLY, this_week), (PoolPeriod.WEEKLY, this_week - timedelta(7))]
    pools = {}
    for period, start in periods:
        PrizePool.objects.bulk_create(
            [PrizePool(game=game, period=period, period_start=start) for game in Game.values],
            ignore_conflicts=True,
        )
        pools[(period, start)] = {
            pool.game: pool for pool in PrizePool.objects.filter(period=period, period_start=start)
        }
    return pools


def _seed_entries(*, pools, sessions, players, seed: int) -> int:
    """Entry fees from the players of completed sessions into their day's and week's pools."""
    balances = {user_id: (wallet_id, balance) for wallet_id, user_id, balance in players}
    entries: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for session in sessions:
        if session.status != SessionStatus.COMPLETED:
            continue
        for period in PoolPeriod.values:
            by_game = pools.get((period, period_start(period, session.started_at)))
            pool = by_game and by_game.get(session.game)
            wallet_id, balance = balances[session.player_id]
            if pool is None or len(entries[pool.pk]) >= MAX_ENTRIES_PER_POOL or balance < ENTRY_FEE:
                continue
            balances[session.player_id] = (wallet_id, balance - ENTRY_FEE)
            entries[pool.pk].append((wallet_id, session.pk))
    lines = [
        TransferLine(
            f"pool-entry:{pool_id}:demo-{seed}-session-{session_id}",
            TransferKind.POOL_ENTRY_FEE,
            Asset.MONEY,
            ENTRY_FEE,
            wallet_account(wallet_id, "spendable"),
            pool_account(pool_id),
            TransferSubject.POOL,
            pool_id,
        )
        for pool_id, pool_entries in entries.items()
        for wallet_id, session_id in pool_entries
    ]
    for part in _chunks(lines):
        transfers_book(lines=part)
    for pool_id, pool_entries in entries.items():
        PrizePool.objects.filter(pk=pool_id).update(
            amount=F("amount") + len(pool_entries) * ENTRY_FEE
        )
    return len(lines)
