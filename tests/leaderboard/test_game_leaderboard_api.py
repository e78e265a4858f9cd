"""GET /api/v1/leaderboards/<game>/: each player's best score, ranked, per period."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from leaderboard.models import ArchivedScore
from leaderboard.periods import period_bounds, period_start
from leaderboard.selectors import game_leaderboard
from tests.factories import UserFactory
from tests.leaderboard.factories import orphan_score, score_at

URL = "/api/v1/leaderboards/{game}/"


@pytest.fixture
def client() -> APIClient:
    return APIClient()


@pytest.fixture
def boards():
    """Snake scores today, earlier this week, last week, and in the archive."""
    now = timezone.now()
    today, _ = period_bounds("daily", period_start("daily", now))
    week, _ = period_bounds("weekly", period_start("weekly", now))
    users = {name: UserFactory(username=name) for name in ("ann", "bob", "cat", "dan", "eve")}
    # today: ann 500 twice (her earlier one counts), bob 500 later, cat 300
    score_at(user=users["ann"], points=500, at=today + timedelta(seconds=10))
    score_at(user=users["bob"], points=500, at=today + timedelta(seconds=20))
    score_at(user=users["ann"], points=500, at=today + timedelta(seconds=30))
    score_at(user=users["cat"], points=300, at=today + timedelta(seconds=5))
    # this week before today (on Mondays, last week instead): dan 900
    score_at(user=users["dan"], points=900, at=today - timedelta(seconds=1))
    # an orphan and another game's score count nowhere on the snake board
    orphan_score(user=users["eve"], points=10_000, at=today + timedelta(seconds=1))
    score_at(user=users["eve"], points=10_000, at=today + timedelta(seconds=1), game="pong")
    # an archived record counts all-time
    ArchivedScore.objects.create(
        id=10**9,
        player=users["eve"],
        game="snake",
        points=2_000,
        achieved_at=now - timedelta(days=400),
        archived_at=now,
    )
    return {"now": now, "week_has_dan": today > week}


def _ranked(response) -> list[tuple[int, str, int]]:
    return [(e["rank"], e["username"], e["points"]) for e in response.json()["data"]["entries"]]


@pytest.mark.django_db
def test_daily_ranks_each_players_best_with_the_earliest_score_winning_a_tie(client, boards):
    # given today's snake scores
    # when anyone asks for today's board
    response = client.get(URL.format(game="snake"), {"period": "daily"})

    # then each player appears once, ranked 1, 2, 3, ann before bob on the tie
    assert response.status_code == 200
    assert _ranked(response) == [(1, "ann", 500), (2, "bob", 500), (3, "cat", 300)]
    body = response.json()
    assert body["success"] is True
    assert body["data"]["period"] == "daily"
    assert body["data"]["period_start"] == period_start("daily", boards["now"]).isoformat()


@pytest.mark.django_db
def test_weekly_and_alltime_boards_and_the_limit(client, boards):
    # given scores today, before today and in the archive
    # when asking for the weekly and all-time boards, the latter limited to 2
    weekly = client.get(URL.format(game="snake"), {"period": "weekly"})
    alltime = client.get(URL.format(game="snake"), {"period": "alltime", "limit": "2"})

    # then the week has dan's score only if it fell in this ISO week
    expected_week = [("ann", 500), ("bob", 500), ("cat", 300)]
    if boards["week_has_dan"]:
        expected_week.insert(0, ("dan", 900))
    assert [(name, points) for _rank, name, points in _ranked(weekly)] == expected_week
    # and all time includes the archive, cut at the limit
    assert _ranked(alltime) == [(1, "eve", 2_000), (2, "dan", 900)]


@pytest.mark.django_db
def test_the_default_is_todays_top_ten():
    # given 12 players with a score today
    now = timezone.now()
    today, _ = period_bounds("daily", period_start("daily", now))
    for n in range(12):
        score_at(user=UserFactory(), points=n, at=today + timedelta(seconds=n))

    # when the board is asked for without parameters
    board = game_leaderboard(game="snake", period="daily", as_of=now)
    response = APIClient().get(URL.format(game="snake"))

    # then it is today's top 10
    assert response.status_code == 200
    assert [e["points"] for e in response.json()["data"]["entries"]] == list(range(11, 1, -1))
    assert [e["rank"] for e in board.entries] == list(range(1, 11))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("game", "query", "field", "message"),
    [
        ("chess", {}, "game", "Unknown game; one of: snake, tetris, pong, breakout"),
        ("snake", {"period": "yearly"}, "period", "Unknown period; one of: daily, weekly, alltime"),
        ("snake", {"limit": "101"}, "limit", "less than or equal to 100"),
        ("snake", {"limit": "0"}, "limit", "greater than or equal to 1"),
        ("snake", {"limit": "ten"}, "limit", "A valid integer is required"),
    ],
)
def test_bad_input_is_a_400_with_a_clear_message(client, game, query, field, message):
    # given nothing
    # when the board is asked for with bad input
    response = client.get(URL.format(game=game), query)

    # then the answer is a 400 naming the field
    assert response.status_code == 400
    error = response.json()["error"]
    assert message in " ".join(error["fields"][field])
    assert message in error["message"]
