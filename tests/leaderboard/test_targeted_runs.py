"""Runs of the leaderboard's jobs with parameters: `finalize_prize_pools(game, period)` finalizes
only those pools (also beside a full sweep reaching the same pools at once), and
`cleanup(steps)` runs only those steps; ill-typed parameters are refused before anything is
recorded."""

from datetime import timedelta

import pytest

from jobs.exceptions import InvalidInput
from jobs.models import JobRun, RunStatus
from jobs.runner import job_run_execute
from jobs.services import job_run_request
from leaderboard.models import ArchivedScore, GameSession, PoolStatus, PrizePool, Score
from ledger.models import Notification, Transfer, TransferKind
from tests.concurrency import at_once
from tests.factories import UserFactory
from tests.invariants import assert_ledger_consistent
from tests.leaderboard.factories import (
    MONDAY,
    active_session,
    funded_pool,
    orphan_score,
    paid_prizes,
    player,
    score_at,
)
from tests.ledger.helpers import counts_of, run_job

SUNDAY = (MONDAY - timedelta(days=1)).date()
LAST_MONDAY = (MONDAY - timedelta(days=7)).date()
DAY = timedelta(days=1)
COUNTS = ("pools_due", "pools_finalized", "pools_no_winner", "pools_failed", "prize_paid")


@pytest.fixture
def ended_pools():
    """Sunday's daily and last week's weekly pools of snake and pong, each funded and won."""
    pools = {}
    for game in ("snake", "pong"):
        pools[game, "daily"] = funded_pool(game=game, period="daily", start=SUNDAY, fees=2)
        pools[game, "weekly"] = funded_pool(game=game, period="weekly", start=LAST_MONDAY, fees=2)
        score_at(user=player(), points=10, at=MONDAY - timedelta(hours=2), game=game)
    return pools


def _open_pools() -> set[tuple[str, str]]:
    return set(PrizePool.objects.filter(status=PoolStatus.OPEN).values_list("game", "period"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "finalized", "targeted"),
    [
        ({"game": "snake"}, {("snake", "daily"), ("snake", "weekly")}, {"targeted_game": "snake"}),
        (
            {"period": "weekly"},
            {("snake", "weekly"), ("pong", "weekly")},
            {"targeted_period": "weekly"},
        ),
        (
            {"game": "pong", "period": "daily"},
            {("pong", "daily")},
            {"targeted_game": "pong", "targeted_period": "daily"},
        ),
    ],
)
def test_a_targeted_finalize_finalizes_only_the_pools_of_its_game_and_period(
    ended_pools, params, finalized, targeted
):
    # given four ended pools, two games by two periods, each with a winner

    # when a dry run, then the real run, of finalize_prize_pools is given a game and/or period
    dry = run_job("finalize_prize_pools", as_of=MONDAY, params=params, dry_run=True)
    run = run_job("finalize_prize_pools", as_of=MONDAY, params=params)

    # then just those pools were finalized and paid, as the dry run predicted
    assert run.status == RunStatus.SUCCEEDED, run.status_reason
    assert _open_pools() == set(ended_pools) - finalized
    for key, pool in ended_pools.items():
        assert paid_prizes(pool) == (1_000 if key in finalized else 0), key
    assert counts_of(run.summary, COUNTS) == counts_of(dry.summary, COUNTS)
    assert (run.summary["pools_due"], run.summary["pools_finalized"]) == (
        len(finalized),
        len(finalized),
    )
    # and the summary says what was targeted, listing only the targeted game when there is one
    assert {key: value for key, value in run.summary.items() if key.startswith("targeted_")} == (
        targeted
    )
    if "game" in params:
        assert list(run.summary["games"]) == [params["game"]]
    assert_ledger_consistent()


@pytest.mark.django_db(transaction=True)
def test_a_sweep_and_a_targeted_finalize_at_once_pay_each_pool_exactly_once():
    # given a week of ended daily snake and pong pools, each funded and won
    pools = []
    for days_ago in range(1, 8):
        start = (MONDAY - days_ago * DAY).date()
        for game in ("snake", "pong"):
            pools.append(funded_pool(game=game, period="daily", start=start, fees=1))
            score_at(user=player(), points=days_ago, at=MONDAY - days_ago * DAY, game=game)
    sweep = job_run_request(
        job="finalize_prize_pools", trigger="schedule", as_of=MONDAY, enqueue=False
    )
    targeted = job_run_request(
        job="finalize_prize_pools",
        trigger="api",
        as_of=MONDAY,
        params={"game": "snake"},
        enqueue=False,
    )

    # when both run at the same moment, each in its own thread and connection
    at_once(*(lambda run=run: job_run_execute(run_id=run.pk) for run in (sweep, targeted)))

    # then both ran, and between them every pool was finalized and paid exactly once
    sweep.refresh_from_db()
    targeted.refresh_from_db()
    assert (sweep.status, targeted.status) == (RunStatus.SUCCEEDED, RunStatus.SUCCEEDED)
    assert _open_pools() == set()
    assert [paid_prizes(pool) for pool in pools] == [500] * len(pools)
    assert Transfer.objects.filter(kind=TransferKind.PRIZE_PAYOUT).count() == len(pools)
    assert sweep.summary["pools_finalized"] + targeted.summary["pools_finalized"] == len(pools)
    # and the targeted run finalized snake pools only
    finalized_by = dict(PrizePool.objects.values_list("pk", "finalized_by_run_id"))
    assert {finalized_by[pool.pk] for pool in pools if pool.game == "pong"} == {sweep.pk}
    assert_ledger_consistent()


@pytest.fixture
def cleanup_work():
    """One of each thing the cleanup removes: a stale session with an old score, an orphan, an
    old score to archive and a sent notification past its retention."""
    as_of = MONDAY + timedelta(hours=3)
    user = UserFactory()
    stale = active_session(user=user, started_at=as_of - 120 * DAY)
    Score.objects.create(
        player=user, game="snake", points=1, achieved_at=as_of - 100 * DAY, session=stale
    )
    orphan_score(user=user, points=2, at=as_of)
    score_at(user=user, points=3, at=as_of - 95 * DAY)
    Notification.objects.create(
        user=user,
        channel="push",
        kind="test",
        dedupe_key="test:old",
        status="sent",
        sent_at=as_of - 40 * DAY,
    )
    return as_of


@pytest.mark.django_db
def test_a_cleanup_given_one_step_runs_only_that_step(cleanup_work):
    # given work for every step

    # when the cleanup is told to prune sent notifications only
    run = run_job("cleanup", as_of=cleanup_work, params={"steps": ["sent_notifications"]})

    # then only the old notification is gone; sessions and scores are as they were
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary == {"notifications_deleted": 1, "steps": ["sent_notifications"]}
    assert not Notification.objects.exists()
    assert GameSession.objects.count() == 2
    assert Score.objects.count() == 3
    assert not ArchivedScore.objects.exists()


@pytest.mark.django_db
def test_cleanup_steps_run_in_their_own_order_and_a_dry_run_predicts_them(cleanup_work):
    # given work for every step, and steps given out of order with a repeat
    params = {"steps": ["score_archive", "stale_sessions", "score_archive"]}

    # when a dry run, then the real run, are made with those steps
    dry = run_job("cleanup", as_of=cleanup_work, params=params, dry_run=True)
    run = run_job("cleanup", as_of=cleanup_work, params=params)

    # then the steps are stored once each in the order they run
    assert run.params == {"steps": ["stale_sessions", "score_archive"]}
    # and the stale session went first, so its old score is now an orphan, not archived;
    # the other old score was archived; orphans and notifications were left
    expected = {
        "sessions_deleted": 1,
        "scores_archived": 1,
        "archiving": True,
        "steps": ["stale_sessions", "score_archive"],
    }
    assert run.summary == {key: value for key, value in dry.summary.items() if key != "dry_run"}
    assert run.summary == expected
    assert Score.objects.filter(session__isnull=True).count() == 2
    assert Notification.objects.count() == 1


@pytest.mark.django_db
def test_a_dry_run_without_the_session_step_counts_a_stale_sessions_old_score_as_archived(
    cleanup_work,
):
    # given work for every step
    params = {"steps": ["orphan_scores", "score_archive"]}

    # when a dry run, then the real run, leave the stale session alone
    dry = run_job("cleanup", as_of=cleanup_work, params=params, dry_run=True)
    run = run_job("cleanup", as_of=cleanup_work, params=params)

    # then the stale session's old score was archived with the other, and only the one
    # orphan deleted, as predicted
    assert counts_of(run.summary, ("orphan_scores_deleted", "scores_archived")) == {
        "orphan_scores_deleted": 1,
        "scores_archived": 2,
    }
    assert run.summary == {key: value for key, value in dry.summary.items() if key != "dry_run"}
    assert GameSession.objects.filter(status="active").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("job", "params", "field"),
    [
        ("finalize_prize_pools", {"game": "chess"}, "params.game"),
        ("finalize_prize_pools", {"period": "monthly"}, "params.period"),
        ("finalize_prize_pools", {"game": ["snake"]}, "params.game"),
        ("finalize_prize_pools", {"pool_ids": [1]}, "params.pool_ids"),
        ("cleanup", {"steps": ["vacuum"]}, "params.steps"),
        ("cleanup", {"steps": []}, "params.steps"),
        ("cleanup", {"steps": "stale_sessions"}, "params.steps"),
        ("update_leaderboard", {"game": "snake"}, "params.game"),
    ],
)
def test_bad_params_are_refused_with_the_field_and_nothing_is_recorded(job, params, field):
    # given no runs yet

    # when a run is requested with parameters its job does not accept
    with pytest.raises(InvalidInput) as refused:
        job_run_request(job=job, trigger="api", params=params, enqueue=False)

    # then the refusal names the parameter, and no run was recorded
    assert refused.value.fields.get(field), refused.value.fields
    assert not JobRun.objects.exists()
