"""The leaderboard jobs' own log lines, in the seeds' words, as kept with each run."""

from datetime import timedelta

import pytest
from django.utils import timezone

from leaderboard.jobs import games as leaderboard_jobs
from leaderboard.models import Boost, BoostStatus
from leaderboard.periods import period_bounds, period_start
from ledger.models import Wallet
from tests.factories import funded_wallet
from tests.leaderboard.factories import (
    MONDAY,
    BoostFactory,
    LeaderboardEntryFactory,
    active_session,
    funded_pool,
    orphan_score,
    player,
    score_at,
)
from tests.ledger.helpers import run_job

pytestmark = pytest.mark.django_db

SUNDAY = (MONDAY - timedelta(days=1)).date()


def run_lines(run) -> list[str]:
    """The lines the run's body logged, without the run's prefix."""
    prefix = f"[{run.job} #{run.pk}] "
    return [
        entry["line"].removeprefix(prefix)
        for entry in run.attempts.get().log
        if entry["line"].startswith(prefix)
    ]


def test_update_leaderboard_logs_the_seeds_lines():
    # given three users with wallets and a boost that has run out
    for _ in range(3):
        funded_wallet()
    BoostFactory(user=Wallet.objects.first().user, expires_at=MONDAY - timedelta(hours=1))
    users = Wallet.objects.filter(user__is_active=True).count()

    # when the leaderboard is updated
    run = run_job("update_leaderboard", as_of=MONDAY)

    # then it logs the seed's lines
    assert Boost.objects.get().status == BoostStatus.EXPIRED
    assert run_lines(run) == [
        "Starting leaderboard update job...",
        "Expired 1 leaderboard boosts",
        f"Recalculating scores for {users:,} users",
        f"Leaderboard recalculation complete. Updated {users:,} users.",
        "Leaderboard update job completed successfully",
    ]


def test_finalize_prize_pools_logs_each_pool_then_a_count_past_the_bound(monkeypatch):
    # given Sunday's funded snake pool with a winner, and no scores for three other games
    snake = funded_pool(game="snake", period="daily", start=SUNDAY, fees=2)
    others = [
        funded_pool(game=game, period="daily", start=SUNDAY)
        for game in ("tetris", "pong", "breakout")
    ]
    winner = player()
    score_at(user=winner, points=42, at=period_bounds("daily", SUNDAY)[0] + timedelta(hours=12))
    monkeypatch.setattr(leaderboard_jobs, "POOL_LINES", 3)

    # when the pools are finalized
    run = run_job("finalize_prize_pools", as_of=MONDAY)

    # then the first three pools have their lines, the fourth is counted, and the summary
    assert run_lines(run) == [
        "Starting prize pool calculation...",
        f"Finalized daily pool #{snake.pk} (snake, {SUNDAY})",
        f"   Winner: user #{winner.pk} - Prize: ₦10.00",
        f"Finalized daily pool #{others[0].pk} (tetris, {SUNDAY}): no winner, no games played",
        f"Finalized daily pool #{others[1].pk} (pong, {SUNDAY}): no winner, no games played",
        "... and 1 more pools (in the run's summary)",
        "Prize Pool Calculation Summary:",
        "   Pools processed: 4",
        "   Pools finalized: 1",
        "   Pools without a winner: 3",
        "   Errors: 0",
    ]


def test_cleanup_logs_each_step_and_its_summary():
    # given a stale session and an orphaned score
    now = timezone.now()
    user = player()
    active_session(user=user, started_at=now - timedelta(hours=2))
    orphan_score(user=user, points=5, at=now - timedelta(hours=1))

    # when the cleanup runs
    run = run_job("cleanup", as_of=now)

    # then it logs the seed's lines, step by step, and the summary
    assert run_lines(run) == [
        "Starting cleanup job...",
        "Deleted 1 expired sessions",
        "Cleaned 1 orphaned leaderboard entries",
        "Leaderboard archiving enabled (no entries to archive)",
        "Deleted 0 sent notifications",
        "Cleanup Summary:",
        "   Expired sessions deleted: 1",
        "   Orphaned entries cleaned: 1",
        "   Leaderboard entries archived: 0",
        "   Sent notifications deleted: 0",
    ]


def test_a_cleanup_dry_run_says_what_it_would_do():
    # given an orphaned score
    now = timezone.now()
    orphan_score(user=player(), points=5, at=now - timedelta(hours=1))

    # when just the orphan step is dry-run
    run = run_job("cleanup", as_of=now, dry_run=True, params={"steps": ["orphan_scores"]})

    # then it says what it would clean
    assert run_lines(run) == [
        "Starting cleanup job...",
        "Would clean 1 orphaned leaderboard entries",
        "Cleanup Summary:",
        "   Orphaned entries cleaned: 1",
    ]


def test_rotate_featured_logs_each_featured_user_and_its_completion():
    # given a leaderboard of five
    for rank in range(1, 6):
        LeaderboardEntryFactory(rank=rank)

    # when the featured users are rotated
    run = run_job("rotate_featured", as_of=MONDAY)

    # then each of the three is logged, then the seed's closing line
    featured, week = run.summary["featured"], run.summary["week"]
    assert run_lines(run) == [
        "Starting featured user rotation...",
        *(f"Featured user #{user_id} for {week}" for user_id in featured),
        "Featured user rotation completed: 3 of the top 5 featured, 0 cleared",
    ]


def test_validate_leaderboards_logs_its_banner_each_board_and_the_counts():
    # given one snake score today and a sound main leaderboard
    now = timezone.now()
    score_at(user=player(), points=9, at=period_bounds("daily", period_start("daily", now))[0])
    LeaderboardEntryFactory(rank=1)

    # when the leaderboards are validated
    run = run_job("validate_leaderboards", as_of=now)

    # then the seed's banner, a line per board and its summary
    lines = run_lines(run)
    assert lines[0] == "Starting leaderboard validation..."
    assert lines[1:4] == [
        "Validated snake daily: 1 entries",
        "Validated snake weekly: 1 entries",
        "Validated snake alltime: 1 entries",
    ]
    assert "Validated main leaderboard: 1 entries" in lines
    assert lines[-4:] == [
        "Leaderboard Validation Summary:",
        "   Leaderboards processed: 15",
        "   Entries validated: 3",
        "   Errors: 0",
    ]
