"""Game sessions and their scores."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from jobs.exceptions import ConflictError
from leaderboard.models import SESSION_TRANSITIONS, Game, GameSession, Score, SessionStatus


class SessionError(ConflictError):
    """A session change that the session's state does not allow."""


@transaction.atomic
def game_session_start(*, player, game: str, at: datetime | None = None) -> GameSession:
    return GameSession.objects.create(
        player=player, game=Game(game), started_at=at or timezone.now()
    )


@transaction.atomic
def game_session_complete(
    *, session: GameSession, points: int, at: datetime | None = None
) -> Score:
    """End an active session and record its score."""
    at = at or timezone.now()
    completed = SESSION_TRANSITIONS.update(
        GameSession.objects.filter(pk=session.pk),
        source={SessionStatus.ACTIVE},
        target=SessionStatus.COMPLETED,
        ended_at=at,
    )
    if not completed:
        raise SessionError(f"session #{session.pk} is not active")
    return Score.objects.create(
        player_id=session.player_id,
        game=session.game,
        points=points,
        achieved_at=at,
        session=session,
    )
