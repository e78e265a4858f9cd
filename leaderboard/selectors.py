"""Reads of the leaderboard.

Scores whose session is gone (orphans, deleted by `cleanup`) count nowhere: not on a game
leaderboard and not for a prize.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import date, datetime

from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from leaderboard.models import ArchivedScore, Game, LeaderboardEntry, PrizePool, Score
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
# all-time board includes the archive, so old records stay on it. `{read}` reads the ranked
# board: a page of it for the API, chosen ranks, or its shape for `validate_leaderboards`.
_GAME_BOARD_SQL = """
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
),
board AS (
    SELECT ROW_NUMBER() OVER (ORDER BY best.points DESC, best.achieved_at, best.id) AS rank,
           best.player_id, account.username, best.points, best.achieved_at,
           best.id AS score_id
    FROM best JOIN {user} AS account ON account.id = best.player_id
    WHERE best.nth = 1
)
{read}
"""

_BOARD_COLUMNS = "rank, player_id, username, points, achieved_at"

_TOP_READ = f"SELECT {_BOARD_COLUMNS} FROM board ORDER BY rank LIMIT %(limit)s"

_RANKS_READ = f"SELECT {_BOARD_COLUMNS} FROM board WHERE rank IN ({{ranks}}) ORDER BY rank"

# A board's shape: its size, and the first rank where it stops being 1, 2, 3, ... (a gap, a
# repeat, not starting at 1) and the first rank below a better score (out of the board's own
# order), each NULL when there is none.
_SHAPE_COLUMNS = """
SELECT COUNT(*), COUNT(DISTINCT player_id),
       MIN(CASE WHEN rank <> COALESCE(prev_rank, 0) + 1 THEN rank END),
       MIN(CASE WHEN {misordered} THEN rank END)
FROM neighbours
"""

_SHAPE_READ = """,
neighbours AS (
    SELECT rank, player_id, points, achieved_at, score_id,
           LAG(rank) OVER ranked AS prev_rank,
           LAG(points) OVER ranked AS prev_points,
           LAG(achieved_at) OVER ranked AS prev_at,
           LAG(score_id) OVER ranked AS prev_id
    FROM board WINDOW ranked AS (ORDER BY rank, score_id)
)
""" + _SHAPE_COLUMNS.format(
    misordered="prev_points < points OR (prev_points = points AND (prev_at > achieved_at "
    "OR (prev_at = achieved_at AND prev_id >= score_id)))"
)

# The main leaderboard ranks by score, ties by the lower user id (`standings`).
_ENTRY_SHAPE_SQL = """
WITH neighbours AS (
    SELECT rank, user_id AS player_id, score,
           LAG(rank) OVER ranked AS prev_rank,
           LAG(score) OVER ranked AS prev_score,
           LAG(user_id) OVER ranked AS prev_user
    FROM {entry} WINDOW ranked AS (ORDER BY rank, user_id)
)
""" + _SHAPE_COLUMNS.format(
    misordered="prev_score < score OR (prev_score = score AND prev_user > player_id)"
)


@dataclasses.dataclass(frozen=True)
class BoardShape:
    """What `validate_leaderboards` checks of a whole board, counted in the database."""

    entries: int
    players: int
    first_rank_break: int | None  # the first rank out of 1, 2, 3, ...; None when contiguous
    first_misordered_rank: int | None  # the first rank above a better score; None when ordered


def _game_board_sql(*, game: str, period: str, as_of: datetime | None, read: str):
    """The board's statement with `read` over it, its parameters and its period's start."""
    game = Game(game)
    if period not in LeaderboardPeriod.ALL:
        raise ValueError(f"unknown period {period!r}")
    quote = connection.ops.quote_name
    params: dict = {"game": game.value}
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
    sql = _GAME_BOARD_SQL.format(
        score=quote(Score._meta.db_table),
        user=quote(get_user_model()._meta.db_table),
        window=window,
        archive=archive,
        read=read,
    )
    return sql, params, start


def _fetch_entries(sql: str, params: dict) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        columns = [column[0] for column in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def game_leaderboard(
    *, game: str, period: str, limit: int = 10, as_of: datetime | None = None
) -> GameLeaderboard:
    """The top `limit` players of a game today, this ISO week or of all time (UTC)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    sql, params, start = _game_board_sql(game=game, period=period, as_of=as_of, read=_TOP_READ)
    entries = _fetch_entries(sql, {**params, "limit": limit})
    return GameLeaderboard(
        game=Game(game).value, period=period, period_start=start, entries=entries
    )


def game_leaderboard_ranks(
    *, game: str, period: str, ranks: Collection[int], as_of: datetime | None = None
) -> list[dict]:
    """The entries at `ranks` of the board `game_leaderboard` pages through, as it shows
    them; a rank past the end has none."""
    if not ranks:
        return []
    names = {f"rank_{n}": rank for n, rank in enumerate(sorted(set(ranks)))}
    read = _RANKS_READ.format(ranks=", ".join(f"%({name})s" for name in names))
    sql, params, _start = _game_board_sql(game=game, period=period, as_of=as_of, read=read)
    return _fetch_entries(sql, {**params, **names})


def _shape(sql: str, params: dict) -> BoardShape:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return BoardShape(*cursor.fetchone())


def game_leaderboard_shape(*, game: str, period: str, as_of: datetime | None = None) -> BoardShape:
    """The whole board `game_leaderboard` pages through, in one statement."""
    sql, params, _start = _game_board_sql(game=game, period=period, as_of=as_of, read=_SHAPE_READ)
    return _shape(sql, params)


def leaderboard_shape() -> BoardShape:
    """The main leaderboard (`LeaderboardEntry`), in one statement."""
    table = connection.ops.quote_name(LeaderboardEntry._meta.db_table)
    return _shape(_ENTRY_SHAPE_SQL.format(entry=table), {})


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
