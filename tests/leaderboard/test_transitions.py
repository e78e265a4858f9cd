"""The leaderboard's status maps are read where the statuses change: a change a map does not
list is refused before anything is written, and a row moved first is left alone."""

from datetime import timedelta

import pytest

from jobs.transitions import TransitionNotAllowed
from leaderboard.models import (
    BOOST_TRANSITIONS,
    POOL_TRANSITIONS,
    SESSION_TRANSITIONS,
    BoostStatus,
    PoolStatus,
    PrizePool,
    Score,
    SessionStatus,
)
from leaderboard.services.games import SessionError, game_session_complete
from leaderboard.services.pools import prize_pool_finalize
from leaderboard.services.standings import boosts_expire_due
from tests.leaderboard.factories import (
    MONDAY,
    BoostFactory,
    active_session,
    funded_pool,
    paid_prizes,
    player,
    score_at,
)

SUNDAY = (MONDAY - timedelta(days=1)).date()


@pytest.mark.parametrize(
    ("transitions", "source", "target"),
    [
        (BOOST_TRANSITIONS, BoostStatus.EXPIRED, BoostStatus.ACTIVE),
        (SESSION_TRANSITIONS, SessionStatus.COMPLETED, SessionStatus.ACTIVE),
        (POOL_TRANSITIONS, PoolStatus.FINALIZED, PoolStatus.OPEN),
    ],
    ids=["boost", "session", "pool"],
)
def test_a_change_the_map_does_not_list_is_refused(transitions, source, target):
    # given a final status, when asked to leave it, then the map refuses
    with pytest.raises(TransitionNotAllowed):
        transitions.check(source={source}, target=target)


@pytest.mark.django_db
def test_the_boost_expiry_is_checked_against_the_boost_map(monkeypatch):
    # given a boost that has run out, and a boost map that does not let it expire
    boost = BoostFactory(expires_at=MONDAY)
    monkeypatch.setattr(BOOST_TRANSITIONS, "allowed", {BoostStatus.ACTIVE: frozenset()})

    # when the expiry runs, then it refuses before writing anything
    with pytest.raises(TransitionNotAllowed):
        boosts_expire_due(as_of=MONDAY)
    boost.refresh_from_db()
    assert boost.status == BoostStatus.ACTIVE
    assert boost.expired_at is None


@pytest.mark.django_db
def test_completing_a_session_already_completed_leaves_it_as_it_was():
    # given a session completed once
    session = active_session(user=player(), started_at=MONDAY)
    game_session_complete(session=session, points=40, at=MONDAY + timedelta(minutes=5))

    # when it is completed again, later and with other points
    with pytest.raises(SessionError):
        game_session_complete(session=session, points=90, at=MONDAY + timedelta(minutes=9))

    # then the conditional update moved nothing and no second score was written
    session.refresh_from_db()
    assert session.status == SessionStatus.COMPLETED
    assert session.ended_at == MONDAY + timedelta(minutes=5)
    assert list(Score.objects.filter(session=session).values_list("points", flat=True)) == [40]


@pytest.mark.django_db
def test_the_pool_finalization_is_checked_against_the_pool_map(monkeypatch):
    # given yesterday's funded pool with a winning score, and a pool map that keeps pools open
    pool = funded_pool(game="snake", period="daily", start=SUNDAY, fees=2)
    score_at(user=player(), points=70, at=MONDAY - timedelta(hours=2))
    monkeypatch.setattr(POOL_TRANSITIONS, "allowed", {PoolStatus.OPEN: frozenset()})

    # when the pool is finalized, then it refuses before writing or paying anything
    with pytest.raises(TransitionNotAllowed):
        prize_pool_finalize(pool_id=pool.pk, as_of=MONDAY)
    pool = PrizePool.objects.get(pk=pool.pk)
    assert pool.status == PoolStatus.OPEN
    assert pool.winner is None
    assert paid_prizes(pool) == 0
