"""seed_demo's leaderboard data: work due for every leaderboard job, next to work not due."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from leaderboard.models import PoolPeriod, PoolStatus, PrizePool
from leaderboard.periods import period_start
from tests.invariants import assert_ledger_consistent
from tests.ledger.helpers import run_job


@pytest.mark.django_db
def test_seed_demo_leaves_work_due_for_every_leaderboard_job():
    # given the default demo data
    call_command("seed_demo", "--seed", "7", stdout=StringIO())
    now = timezone.now()

    # when every leaderboard job is dry-run
    dry = {
        job: run_job(job, as_of=now, dry_run=True).summary
        for job in ("update_leaderboard", "finalize_prize_pools", "cleanup")
    }

    # then each has work: boosts to expire, users to rank, ended daily and weekly pools with
    # winners, stale sessions, orphans and old scores
    assert dry["update_leaderboard"]["boosts_expired"] > 0
    assert dry["update_leaderboard"]["entries_created"] == 200
    due = dry["finalize_prize_pools"]
    assert due["pools_finalized"] > 0 and due["pools_failed"] == 0
    periods = {pool["period"] for game in due["games"].values() for pool in game["pools"]}
    assert periods == {"daily", "weekly"}
    for key in ("sessions_deleted", "orphan_scores_deleted", "scores_archived"):
        assert dry["cleanup"][key] > 0, key
    # and today's and this week's pools are open and not due yet
    for period in PoolPeriod.values:
        assert PrizePool.objects.filter(
            period=period, period_start=period_start(period, now), status=PoolStatus.OPEN
        ).exists()

    # when the jobs really run, with the featured rotation after the leaderboard
    for job in ("update_leaderboard", "finalize_prize_pools", "cleanup", "rotate_featured"):
        run = run_job(job, as_of=now)

        # then each succeeds and did what its dry run predicted
        assert run.status == "succeeded", (job, run.error)
        if job in dry:
            for key, value in dry[job].items():
                if key != "dry_run":
                    assert run.summary[key] == value, (job, key)
    assert len(run.summary["featured"]) == 3
    assert_ledger_consistent()
