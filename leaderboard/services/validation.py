"""The hourly check of the leaderboards (`validate_leaderboards`, the arcade seed's
"Leaderboard Update").

Every game × period board is read through the selectors the public game leaderboard API
reads it with, and must be readable, ranked 1, 2, 3, ... in its own order (score, then the
earlier score, then the lower score id), one entry per player, and show a sample of entries
(its top and a few ranks drawn reproducibly from the run's `as_of`) exactly as a fresh
recompute from the scores gives them. The main leaderboard must be ranked 1, 2, 3, ... by
score (ties by user id).

Each board costs a bounded number of statements, whatever its size: the shape of the whole
board is counted in the database, and only the sample is recomputed (a few statements per
sampled entry). A board's reads share one snapshot on PostgreSQL, so scores arriving while it
is checked cannot make it disagree with itself.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from django.contrib.auth import get_user_model
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from leaderboard import selectors
from leaderboard.models import ArchivedScore, Game, Score
from leaderboard.periods import period_bounds, period_start
from leaderboard.selectors import BoardShape, LeaderboardPeriod

# The sample of a board compared with the recompute: its top, and a few ranks below it.
SAMPLE_TOP = 10
SAMPLE_DRAWN = 5
MAIN_LEADERBOARD = "main leaderboard"
# Entry fields the public API shows, which the recompute must give the same.
SHOWN_FIELDS = ("rank", "player_id", "username", "points", "achieved_at")


@dataclasses.dataclass(frozen=True)
class BoardCheck:
    board: str  # e.g. "snake daily", or MAIN_LEADERBOARD
    entries: int  # on the board, every one of them rank-checked
    validated: int  # sampled entries that equal their recompute
    error: str = ""  # why the board fails; empty when it is sound


@dataclasses.dataclass(frozen=True)
class LeaderboardValidation:
    boards: list[BoardCheck]  # the game boards, game by game, daily, weekly, all time
    main: BoardCheck | None  # None for a run over one game's boards

    @property
    def checks(self) -> list[BoardCheck]:
        return self.boards + ([self.main] if self.main else [])

    @property
    def failing(self) -> list[BoardCheck]:
        return [check for check in self.checks if check.error]

    def as_summary(self) -> dict:
        """In the seed's words: boards processed, entries validated, errors."""
        summary = {
            "leaderboards_processed": len(self.boards),
            "entries_validated": sum(check.validated for check in self.checks),
            "entries_ranked": sum(check.entries for check in self.boards),
            "errors": len(self.failing),
            "failing_boards": [check.board for check in self.failing],
            "board_errors": {check.board: check.error for check in self.failing},
        }
        if self.main is not None:
            summary["main_leaderboard_entries"] = self.main.entries
        return summary


def board_name(*, game: str, period: str) -> str:
    return f"{game} {period}"


def leaderboards_validate(*, as_of: datetime, game: str | None = None) -> LeaderboardValidation:
    """Check every game × period board (just `game`'s, when given) and, for a run over all
    games, the main leaderboard. Reads only."""
    games = [Game(game).value] if game else Game.values
    boards = [
        _checked(board_name(game=name, period=period), _game_board_check, name, period, as_of)
        for name in games
        for period in LeaderboardPeriod.ALL
    ]
    main = None if game else _checked(MAIN_LEADERBOARD, _main_leaderboard_check)
    return LeaderboardValidation(boards=boards, main=main)


def _checked(board: str, check, *args) -> BoardCheck:
    """`check(*args)` in one snapshot; a board its reads fail on is unreadable."""
    try:
        with _snapshot():
            entries, validated, errors = check(*args)
    except (OperationalError, InterfaceError):
        raise  # the database itself is failing: the whole run fails and is retried
    except Exception as exc:
        return BoardCheck(
            board=board, entries=0, validated=0, error=f"unreadable: {type(exc).__name__}: {exc}"
        )
    return BoardCheck(board=board, entries=entries, validated=validated, error="; ".join(errors))


@contextmanager
def _snapshot() -> Iterator[None]:
    """One read-only transaction; on PostgreSQL a repeatable-read one, whose statements all
    see the same snapshot (inside a caller's transaction, that transaction's view)."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def _shape_errors(shape: BoardShape) -> list[str]:
    errors = []
    if shape.first_rank_break is not None:
        errors.append(f"ranks not contiguous from 1: broken at rank {shape.first_rank_break:,}")
    if shape.first_misordered_rank is not None:
        errors.append(f"out of order: rank {shape.first_misordered_rank:,} beats the rank above it")
    if shape.players != shape.entries:
        errors.append(f"{shape.entries:,} entries for {shape.players:,} players")
    return errors


def _main_leaderboard_check() -> tuple[int, int, list[str]]:
    shape = selectors.leaderboard_shape()
    return shape.entries, 0, _shape_errors(shape)


def _game_board_check(game: str, period: str, as_of: datetime) -> tuple[int, int, list[str]]:
    shape = selectors.game_leaderboard_shape(game=game, period=period, as_of=as_of)
    errors = _shape_errors(shape)
    scores = _eligible_scores(game=game, period=period, as_of=as_of)
    players = _distinct_players(scores)
    if players != shape.entries:
        errors.append(f"{shape.entries:,} entries but {players:,} players have scores")
    if shape.entries == 0:
        return 0, 0, errors
    drawn = _drawn_ranks(board=board_name(game=game, period=period), as_of=as_of, size=players)
    shown = selectors.game_leaderboard(
        game=game, period=period, limit=SAMPLE_TOP, as_of=as_of
    ).entries + selectors.game_leaderboard_ranks(game=game, period=period, ranks=drawn, as_of=as_of)
    missing = sorted({*range(1, min(SAMPLE_TOP, players) + 1), *drawn} - {e["rank"] for e in shown})
    if missing:
        errors.append(f"rank {missing[0]:,} missing")
    recomputed = _recompute(scores, player_ids=[entry["player_id"] for entry in shown])
    mismatched = [
        entry for entry in shown if _as_shown(entry) != recomputed.get(entry["player_id"])
    ]
    if mismatched:
        entry = mismatched[0]
        errors.append(
            f"{len(mismatched)} of {len(shown)} sampled entries differ from a recompute: "
            f"rank {entry['rank']:,} shows {_describe(_as_shown(entry))}, the recompute gives "
            f"{_describe(recomputed.get(entry['player_id']))}"
        )
    return shape.entries, len(shown) - len(mismatched), errors


def _drawn_ranks(*, board: str, as_of: datetime, size: int) -> list[int]:
    """A few ranks below the top, the same for the same board and `as_of` (so a run can be
    redone), different from hour to hour."""
    below_top = range(SAMPLE_TOP + 1, size + 1)
    draw = random.Random(f"validate_leaderboards:{board}:{as_of.isoformat()}")
    return sorted(draw.sample(below_top, min(SAMPLE_DRAWN, len(below_top))))


# --- The recompute, from the scores, independently of the board's statement ------------------


def _eligible_scores(*, game: str, period: str, as_of: datetime) -> list[QuerySet]:
    """The scores that count on the board: live ones with their session (in the period), and
    for all time the archive too."""
    live = Score.objects.filter(game=game, session__isnull=False)
    if period == LeaderboardPeriod.ALLTIME:
        return [live, ArchivedScore.objects.filter(game=game)]
    start, end = period_bounds(period, period_start(period, as_of))
    return [live.filter(achieved_at__gte=start, achieved_at__lt=end)]


def _distinct_players(scores: list[QuerySet]) -> int:
    first, *others = [queryset.values("player_id") for queryset in scores]
    return first.union(*others).count() if others else first.distinct().count()


def _recompute(scores: list[QuerySet], *, player_ids: list[int]) -> dict[int, dict]:
    """Each player's best score (most points, then the earliest, then the lowest id) and
    rank: 1 + the players with any score better than it."""
    best: dict[int, tuple] = {}
    for queryset in scores:
        rows = (
            queryset.filter(player_id__in=player_ids)
            .annotate(
                nth=Window(
                    RowNumber(),
                    partition_by=[F("player_id")],
                    order_by=[F("points").desc(), F("achieved_at").asc(), F("id").asc()],
                )
            )
            .filter(nth=1)
            .values_list("player_id", "points", "achieved_at", "id")
        )
        for player_id, points, achieved_at, score_id in rows:
            key = (-points, achieved_at, score_id)
            if player_id not in best or key < best[player_id]:
                best[player_id] = key
    usernames = dict(get_user_model().objects.filter(pk__in=best).values_list("pk", "username"))
    recomputed = {}
    for player_id, (negated, achieved_at, score_id) in best.items():
        points = -negated
        better = (
            Q(points__gt=points)
            | Q(points=points, achieved_at__lt=achieved_at)
            | Q(points=points, achieved_at=achieved_at, id__lt=score_id)
        )
        recomputed[player_id] = {
            "rank": 1 + _distinct_players([queryset.filter(better) for queryset in scores]),
            "player_id": player_id,
            "username": usernames.get(player_id),
            "points": points,
            "achieved_at": achieved_at,
        }
    return recomputed


def _as_shown(entry: dict) -> dict:
    """An entry's shown fields; SQLite hands a computed datetime back as its UTC text, or
    parsed but naive."""
    shown = {field: entry[field] for field in SHOWN_FIELDS}
    achieved_at = shown["achieved_at"]
    if isinstance(achieved_at, str):
        achieved_at = parse_datetime(achieved_at)
    if timezone.is_naive(achieved_at):
        achieved_at = achieved_at.replace(tzinfo=UTC)
    shown["achieved_at"] = achieved_at
    return shown


def _describe(entry: dict | None) -> str:
    if entry is None:
        return "no such player"
    return (
        f"#{entry['rank']:,} {entry['username']} (user #{entry['player_id']}) "
        f"{entry['points']:,} points at {entry['achieved_at'].isoformat()}"
    )
