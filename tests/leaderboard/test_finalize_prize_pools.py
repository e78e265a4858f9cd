"""finalize_prize_pools: daily and weekly pools, winners, ties, no scores, catching up, one
game failing while the others finalize, and never paying twice."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import IntegrityError, OperationalError

from jobs.models import JobRun
from leaderboard.models import PoolStatus, PrizePool
from leaderboard.services import pools as pools_service
from leaderboard.services.pools import (
    PoolError,
    pool_account,
    prize_pool_enter,
    prize_pool_finalize,
    prize_pool_open,
)
from ledger.models import SystemAccount, Transfer, Wallet
from tests.factories import funded_wallet
from tests.invariants import assert_ledger_consistent
from tests.leaderboard.factories import (
    MONDAY,
    funded_pool,
    orphan_score,
    paid_prizes,
    player,
    score_at,
)
from tests.ledger.helpers import run_job

SUNDAY = (MONDAY - timedelta(days=1)).date()
LAST_MONDAY = (MONDAY - timedelta(days=7)).date()
TUESDAY_MIDNIGHT = MONDAY + timedelta(days=1)
COUNTS = ("pools_due", "pools_finalized", "pools_no_winner", "pools_failed", "prize_paid")


@pytest.fixture
def alert_mail(settings):
    settings.ADMINS = [("Operators", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    return mail


def _spendable(user) -> int:
    return Wallet.objects.get(user=user).spendable_balance


def _pool_balance(pool: PrizePool) -> int:
    return SystemAccount.objects.get(code=pool_account(pool.pk)).balance


@pytest.mark.django_db
def test_on_monday_yesterdays_daily_and_last_weeks_weekly_pools_pay_their_top_scores():
    # given Sunday's daily snake pool and last week's weekly snake pool, both funded,
    # and today's and this week's pools, which have not ended
    daily = funded_pool(game="snake", period="daily", start=SUNDAY, fees=3)
    weekly = funded_pool(game="snake", period="weekly", start=LAST_MONDAY, fees=4)
    today = funded_pool(game="snake", period="daily", start=MONDAY.date(), fees=1)
    this_week = funded_pool(game="snake", period="weekly", start=MONDAY.date(), fees=1)
    sunday_best, tuesday_best, other = player(), player(), player()
    score_at(user=sunday_best, points=900, at=MONDAY - timedelta(hours=2))
    score_at(user=other, points=800, at=MONDAY - timedelta(hours=3))
    score_at(user=tuesday_best, points=950, at=MONDAY - timedelta(days=6))
    # a better snake score today and a better tetris score on Sunday count for neither
    score_at(user=other, points=5_000, at=MONDAY + timedelta(minutes=1))
    score_at(user=other, points=5_000, at=MONDAY - timedelta(hours=1), game="tetris")
    before = {user.pk: _spendable(user) for user in (sunday_best, tuesday_best)}

    # when the job runs at Monday midnight
    run = run_job("finalize_prize_pools", as_of=MONDAY)

    # then Sunday's pool went to Sunday's best and last week's to the week's best
    assert run.status == "succeeded", run.error
    daily.refresh_from_db()
    weekly.refresh_from_db()
    assert (daily.status, daily.winner_id, daily.winning_score) == (
        "finalized",
        sunday_best.pk,
        900,
    )
    assert (weekly.status, weekly.winner_id, weekly.winning_score) == (
        "finalized",
        tuesday_best.pk,
        950,
    )
    assert daily.finalized_by_run_id == run.pk
    assert _spendable(sunday_best) == before[sunday_best.pk] + 1_500
    assert _spendable(tuesday_best) == before[tuesday_best.pk] + 2_000
    assert _pool_balance(daily) == _pool_balance(weekly) == 0
    # and the pools that have not ended are still open
    for pool in (today, this_week):
        pool.refresh_from_db()
        assert pool.status == PoolStatus.OPEN
    assert {k: run.summary[k] for k in COUNTS} == {
        "pools_due": 2,
        "pools_finalized": 2,
        "pools_no_winner": 0,
        "pools_failed": 0,
        "prize_paid": 3_500,
    }
    assert run.summary["games"]["snake"]["finalized"] == 2
    assert run.summary["games"]["tetris"] == {
        "finalized": 0,
        "no_winner": 0,
        "failed": 0,
        "prize_paid": 0,
        "pools": [],
    }
    assert_ledger_consistent()


@pytest.mark.django_db
def test_on_other_days_only_daily_pools_end():
    # given Monday's daily pool and this week's weekly pool, both with scores
    daily = funded_pool(game="pong", period="daily", start=MONDAY.date(), fees=2)
    weekly = funded_pool(game="pong", period="weekly", start=MONDAY.date(), fees=2)
    winner = player()
    score_at(user=winner, points=10, at=MONDAY + timedelta(hours=5), game="pong")

    # when the job runs at Tuesday midnight
    run = run_job("finalize_prize_pools", as_of=TUESDAY_MIDNIGHT)

    # then Monday's pool is finalized and the week's pool stays open until next Monday
    daily.refresh_from_db()
    weekly.refresh_from_db()
    assert (daily.status, daily.winner_id) == ("finalized", winner.pk)
    assert weekly.status == PoolStatus.OPEN
    assert run.summary["pools_due"] == 1

    # when the job runs a second before the next Monday, then at it
    before_monday = run_job("finalize_prize_pools", as_of=MONDAY + timedelta(days=7, seconds=-1))
    run_job("finalize_prize_pools", as_of=MONDAY + timedelta(days=7))

    # then the weekly pool is finalized only once its week has ended
    assert before_monday.summary["pools_due"] == 0
    weekly.refresh_from_db()
    assert (weekly.status, weekly.winner_id) == ("finalized", winner.pk)


@pytest.mark.django_db
def test_a_tie_goes_to_the_earliest_score_and_period_edges_are_respected():
    # given two equal top scores on Sunday, the later one first in the table, a higher score
    # at Monday 00:00 (the next period) and a higher orphan score (its session is gone)
    pool = funded_pool(game="breakout", period="daily", start=SUNDAY, fees=1)
    early, late = player(), player()
    score_at(user=late, points=700, at=MONDAY - timedelta(minutes=1), game="breakout")
    score_at(
        user=early,
        points=700,
        at=MONDAY - timedelta(days=1),
        game="breakout",
    )
    score_at(user=late, points=9_999, at=MONDAY, game="breakout")
    orphan_score(user=late, points=99_999, at=MONDAY - timedelta(hours=1), game="breakout")

    # when the job runs
    run_job("finalize_prize_pools", as_of=MONDAY)

    # then the earliest of the tied scores, at the period's very start, wins
    pool.refresh_from_db()
    assert (pool.winner_id, pool.winning_score) == (early.pk, 700)


@pytest.mark.django_db
def test_a_pool_without_scores_has_no_winner_and_keeps_its_money():
    # given Sunday's tetris pool with entry fees but no tetris score
    pool = funded_pool(game="tetris", period="daily", start=SUNDAY, fees=2)

    # when the job runs
    run = run_job("finalize_prize_pools", as_of=MONDAY)

    # then the pool is no_winner, which is not an error, and nothing was paid
    assert run.status == "succeeded"
    pool.refresh_from_db()
    assert (pool.status, pool.winner_id, pool.finalized_at is not None) == ("no_winner", None, True)
    assert _pool_balance(pool) == 1_000
    assert paid_prizes(pool) == 0
    [outcome] = run.summary["games"]["tetris"]["pools"]
    assert outcome["outcome"] == "no_winner"
    assert outcome["note"] == "no games played"


@pytest.mark.django_db
def test_missed_days_are_caught_up():
    # given the daily snake pools of Friday, Saturday and Sunday, all still open because the
    # job did not run on Saturday or Sunday
    pools = {
        days: funded_pool(game="snake", period="daily", start=(MONDAY - timedelta(days)).date())
        for days in (3, 2, 1)
    }
    winners = {days: player() for days in pools}
    for days, user in winners.items():
        score_at(user=user, points=100 * days, at=MONDAY - timedelta(days=days, hours=-12))

    # when the job runs on Monday
    run = run_job("finalize_prize_pools", as_of=MONDAY)

    # then every missed day is finalized with its own day's winner
    assert run.summary["pools_finalized"] == 3
    for days, pool in pools.items():
        pool.refresh_from_db()
        assert (pool.status, pool.winner_id) == ("finalized", winners[days].pk)


@pytest.mark.django_db
def test_one_game_failing_does_not_stop_the_others_and_the_run_ends_partial(alert_mail):
    # given Sunday's pools for three games, with winners, where pong's pool claims more than
    # its account holds
    pools = {
        game: funded_pool(game=game, period="daily", start=SUNDAY, fees=2)
        for game in ("snake", "pong", "space_invaders")
    }
    winners = {game: player() for game in pools}
    for game, user in winners.items():
        score_at(user=user, points=50, at=MONDAY - timedelta(hours=1), game=game)
    PrizePool.objects.filter(pk=pools["pong"].pk).update(amount=5_000)

    # when the job runs
    run = run_job("finalize_prize_pools", as_of=MONDAY)

    # then snake and space invaders were finalized and paid, pong stays open for the next run
    statuses = {game: PrizePool.objects.get(pk=pool.pk).status for game, pool in pools.items()}
    assert statuses == {"snake": "finalized", "pong": "open", "space_invaders": "finalized"}
    assert paid_prizes(pools["snake"]) == paid_prizes(pools["space_invaders"]) == 1_000
    assert paid_prizes(pools["pong"]) == 0
    # and the run is partial, says which game failed and why, and alerted once
    assert run.status == "partial"
    assert f"pong daily pool #{pools['pong'].pk}" in run.status_reason
    assert "holds 1000, less than the prize 5000" in run.status_reason
    assert run.summary["failed_games"] == ["pong"]
    assert run.summary["games"]["pong"]["failed"] == 1
    assert run.summary["games"]["pong"]["pools"][0]["outcome"] == "failed"
    assert run.summary["games"]["snake"]["finalized"] == 1
    assert len(alert_mail.outbox) == 1
    assert "partial" in alert_mail.outbox[0].subject

    # when the pool is corrected and the job runs the next day
    PrizePool.objects.filter(pk=pools["pong"].pk).update(amount=1_000)
    retry = run_job("finalize_prize_pools", as_of=TUESDAY_MIDNIGHT)

    # then the pong pool is caught up and paid
    assert retry.status == "succeeded"
    assert PrizePool.objects.get(pk=pools["pong"].pk).winner_id == winners["pong"].pk
    assert paid_prizes(pools["pong"]) == 1_000
    assert_ledger_consistent()


@pytest.mark.django_db
def test_running_twice_pays_once():
    # given Sunday's funded pool with a winner
    pool = funded_pool(game="snake", period="daily", start=SUNDAY, fees=2)
    winner = player()
    score_at(user=winner, points=1, at=MONDAY - timedelta(hours=1))
    first = run_job("finalize_prize_pools", as_of=MONDAY)
    balance = _spendable(winner)

    # when the job runs again, and the pool is finalized directly once more
    second = run_job("finalize_prize_pools", as_of=MONDAY)
    again = prize_pool_finalize(pool_id=pool.pk, as_of=MONDAY)

    # then the second run found nothing due and nothing more was paid
    assert first.summary["prize_paid"] == 1_000
    assert second.summary["pools_due"] == 0
    assert again is None
    assert _spendable(winner) == balance
    assert Transfer.objects.filter(reference=f"prize-payout:{pool.pk}").count() == 1

    # and even a pool wrongly reopened and refilled cannot pay again: the payout's id is taken
    PrizePool.objects.filter(pk=pool.pk).update(
        status=PoolStatus.OPEN, winner=None, finalized_at=None
    )
    refill = funded_wallet()
    prize_pool_enter(
        pool=pool, wallet=refill, fee=1_000, reference="refill", at=MONDAY - timedelta(hours=1)
    )
    PrizePool.objects.filter(pk=pool.pk).update(amount=1_000)
    with pytest.raises(IntegrityError):
        prize_pool_finalize(pool_id=pool.pk, as_of=MONDAY)
    assert _spendable(winner) == balance


@pytest.mark.django_db
def test_dry_run_changes_nothing_and_predicts_the_real_run():
    # given a pool with a winner, one without scores and one that will fail
    paid = funded_pool(game="snake", period="daily", start=SUNDAY, fees=3)
    funded_pool(game="tetris", period="weekly", start=LAST_MONDAY, fees=1)
    broken = funded_pool(game="pong", period="daily", start=SUNDAY, fees=1)
    PrizePool.objects.filter(pk=broken.pk).update(amount=10_000)
    score_at(user=player(), points=3, at=MONDAY - timedelta(hours=1))
    score_at(user=player(), points=3, at=MONDAY - timedelta(hours=1), game="pong")
    before = (
        list(PrizePool.objects.order_by("pk").values()),
        list(Transfer.objects.order_by("pk").values()),
    )

    # when a dry run goes first
    dry = run_job("finalize_prize_pools", as_of=MONDAY, dry_run=True)

    # then nothing changed, and the dry run is not itself partial
    assert dry.status == "succeeded"
    assert (
        list(PrizePool.objects.order_by("pk").values()),
        list(Transfer.objects.order_by("pk").values()),
    ) == before

    # and the real run makes exactly the predicted counts and outcomes
    real = run_job("finalize_prize_pools", as_of=MONDAY)
    assert (
        {k: dry.summary[k] for k in COUNTS}
        == {k: real.summary[k] for k in COUNTS}
        == {
            "pools_due": 3,
            "pools_finalized": 1,
            "pools_no_winner": 1,
            "pools_failed": 1,
            "prize_paid": 1_500,
        }
    )
    assert dry.summary["games"] == real.summary["games"]
    assert paid_prizes(paid) == 1_500


@pytest.mark.django_db
def test_entry_fees_fund_the_pool_through_the_ledger_and_only_while_it_is_open():
    # given an open daily pool and a player's wallet
    pool = prize_pool_open(game="snake", period="daily", period_start=SUNDAY)
    wallet = funded_wallet(amount=10_000)
    during = MONDAY - timedelta(hours=1)

    # when the player pays two entries, one of them twice
    prize_pool_enter(pool=pool, wallet=wallet, fee=300, reference="session-1", at=during)
    prize_pool_enter(pool=pool, wallet=wallet, fee=300, reference="session-2", at=during)
    with pytest.raises(IntegrityError):
        prize_pool_enter(pool=pool, wallet=wallet, fee=300, reference="session-2", at=during)

    # then the pool and its account hold both fees, taken from the wallet's spendable balance
    pool.refresh_from_db()
    wallet.refresh_from_db()
    assert pool.amount == _pool_balance(pool) == 600
    assert wallet.spendable_balance == 9_400
    # and entries after the period ended are refused, as are weekly pools off a Monday
    with pytest.raises(PoolError, match="no longer takes entries"):
        prize_pool_enter(pool=pool, wallet=wallet, fee=300, reference="late", at=MONDAY)
    with pytest.raises(PoolError, match="starts on a Monday"):
        prize_pool_open(game="snake", period="weekly", period_start=SUNDAY)
    assert_ledger_consistent()


@pytest.mark.django_db(transaction=True)
def test_a_failing_database_fails_the_run_so_it_is_retried(monkeypatch):
    # given two ended pools, and a database connection that drops while the second finalizes
    # (the run commits pool by pool, as on a worker, outside a test transaction)
    first = funded_pool(game="snake", period="daily", start=SUNDAY)
    second = funded_pool(game="tetris", period="daily", start=SUNDAY)
    finalize = pools_service.prize_pool_finalize

    def flaky(*, pool_id, **kwargs):
        if pool_id == second.pk:
            raise OperationalError("server closed the connection unexpectedly")
        return finalize(pool_id=pool_id, **kwargs)

    monkeypatch.setattr(pools_service, "prize_pool_finalize", flaky)

    # when the job runs
    with pytest.raises(OperationalError):
        run_job("finalize_prize_pools", as_of=MONDAY)

    # then the run failed (not partial), keeping the first pool's committed outcome, and the
    # second pool waits for the retry
    run = JobRun.objects.get(job="finalize_prize_pools")
    assert run.status == "failed"
    assert PrizePool.objects.get(pk=first.pk).status == PoolStatus.NO_WINNER
    assert PrizePool.objects.get(pk=second.pk).status == PoolStatus.OPEN
