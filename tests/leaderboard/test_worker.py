"""A leaderboard job through a real `rundramatiq` worker process and the real Redis broker."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import JobRun, RunStatus
from jobs.services import job_run_request
from leaderboard.models import PoolStatus, PrizePool
from leaderboard.periods import period_bounds, period_start
from ledger.models import Transfer
from tests.invariants import assert_ledger_consistent
from tests.leaderboard.factories import funded_pool, player, score_at

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _wait_until_finished(run: JobRun, timeout: float = 60.0) -> JobRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_finished:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run #{run.pk} still {run.status} after {timeout}s")


def test_a_worker_finalizes_yesterdays_pools_and_pays_the_winners(worker_process):
    # given yesterday's funded snake and pong pools, one with a winner
    now = timezone.now()
    yesterday = period_start("daily", now) - timedelta(days=1)
    snake = funded_pool(game="snake", period="daily", start=yesterday, fees=2)
    pong = funded_pool(game="pong", period="daily", start=yesterday, fees=1)
    winner = player()
    score_at(user=winner, points=42, at=period_bounds("daily", yesterday)[0] + timedelta(hours=12))

    # when the job is sent to the worker
    run = job_run_request(job="finalize_prize_pools", trigger="cli", reason="end-to-end test")
    run = _wait_until_finished(run)

    # then the worker finalized both pools and paid the snake winner once
    assert run.status == RunStatus.SUCCEEDED, run.error + worker_process.log_text()
    assert run.attempts.get().worker
    snake.refresh_from_db()
    pong.refresh_from_db()
    assert (snake.status, snake.winner_id) == (PoolStatus.FINALIZED, winner.pk)
    assert pong.status == PoolStatus.NO_WINNER
    payout = Transfer.objects.get(reference=f"prize-payout:{snake.pk}")
    assert (payout.amount, payout.job_run_id) == (1_000, run.pk)
    assert PrizePool.objects.filter(status=PoolStatus.OPEN).count() == 0
    assert_ledger_consistent()
