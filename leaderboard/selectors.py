"""Reads of the leaderboard.

Scores whose session is gone (orphans, deleted by `cleanup`) count nowhere: not on a game
leaderboard and not for a prize.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from leaderboard.models import ArchivedScore, Game, PrizePool, Score
from leaderboard.periods import period_bounds, period_start

MAX_LIMIT = 100


class LeaderboardPeriod:
    DAILY = "daily"
    WEEKLY = "weekly"
    ALLTIME = "alltime"
    ALL = (DAILY, WEEKLY, ALLTIME)


@dataclasses.dataclass(frozen=True)
class GameLeaderboard:
    game: str
    period: str
    period_start: date | None
    entries: list[dict]


# Each player's best score (the earliest on a tie), then the players ranked by it. The
# all-time board includes the archive, so old records stay on it.
_GAME_LEADERBOARD_SQL = """
WITH scores AS (
    SELECT id, player_id, points, achieved_at FROM {score}
    WHERE game = %(game)s AND session_id IS NOT NULL {window}
    {archive}
),
best AS (
    SELECT id, player_id, points, achieved_at,
           ROW_NUMBER() OVER (
               PARTITION BY player_id ORDER BY points DESC, achieved_at, id
           ) AS nth
    FROM scores
)
SELECT ROW_NUMBER() OVER (ORDER BY best.points DESC, best.achieved_at, best.id) AS rank,
       best.player_id, account.username, best.points, best.achieved_at
FROM best JOIN {user} AS account ON account.id = best.player_id
WHERE best.nth = 1
ORDER BY rank
LIMIT %(limit)s
"""


def game_leaderboard(
    *, game: str, period: str, limit: int = 10, as_of: datetime | None = None
) -> GameLeaderboard:
    """The top `limit` players of a game today, this ISO week or of all time (UTC)."""
    game = Game(game)
    if period not in LeaderboardPeriod.ALL:
        raise ValueError(f"unknown period {period!r}")
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    quote = connection.ops.quote_name
    params = {"game": game.value, "limit": limit}
    start = None
    window = archive = ""
    if period == LeaderboardPeriod.ALLTIME:
        archive = (
            f"UNION ALL SELECT id, player_id, points, achieved_at "
            f"FROM {quote(ArchivedScore._meta.db_table)} WHERE game = %(game)s"
        )
    else:
        start = period_start(period, as_of or timezone.now())
        params["start"], params["end"] = period_bounds(period, start)
        window = "AND achieved_at >= %(start)s AND achieved_at < %(end)s"
    sql = _GAME_LEADERBOARD_SQL.format(
        score=quote(Score._meta.db_table),
        user=quote(get_user_model()._meta.db_table),
        window=window,
        archive=archive,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = [column[0] for column in cursor.description]
        entries = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return GameLeaderboard(game=game.value, period=period, period_start=start, entries=entries)


def pool_winning_score(*, pool: PrizePool) -> Score | None:
    """The top score of the pool's game in its period; the earliest wins a tie."""
    start, end = period_bounds(pool.period, pool.period_start)
    return (
        Score.objects.filter(
            game=pool.game,
            achieved_at__gte=start,
            achieved_at__lt=end,
            session__isnull=False,
        )
        .order_by("-points", "achieved_at", "pk")
        .first()
    )
