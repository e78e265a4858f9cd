"""Leaderboard entries, boosts, game sessions, scores and prize pools.

Scores on the leaderboard are decimals with two places (`DecimalField`); game points and
prize money are integers (money in kobo, moved only by ledger transfers).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from jobs.transitions import Transitions


class LeaderboardEntry(models.Model):
    """One user's place on the leaderboard, rebuilt by `update_leaderboard`.

    Only the primary key is indexed, and on PostgreSQL half of every page is left free
    (fillfactor 50, set by the migration): the nightly recompute moves most ranks, and this way
    its updates stay on their page without touching an index (HOT updates), several times
    cheaper at a million users. The top 10 is read once a week, by a scan.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="leaderboard_entry",
    )
    score = models.DecimalField(max_digits=16, decimal_places=2, default=0)
    rank = models.PositiveIntegerField(help_text="1 is the top; ties broken by user id.")
    cycles_completed = models.PositiveIntegerField(default=0)
    average_completion_days = models.DecimalField(
        max_digits=8,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Mean days from obligation to fulfilment; empty without a fulfilled cycle.",
    )
    featured = models.BooleanField(default=False)
    featured_week = models.CharField(
        max_length=8, blank=True, help_text="ISO week of the draw that featured the user."
    )
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "leaderboard entries"
        ordering = ["rank"]
        constraints = [
            models.CheckConstraint(condition=Q(rank__gte=1), name="entry_rank_positive"),
            models.CheckConstraint(
                condition=Q(featured=False) | ~Q(featured_week=""),
                name="entry_featured_has_week",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.rank} user {self.user_id} ({self.score})"


class BoostKind(models.TextChoices):
    MULTIPLIER = "multiplier", "Multiplier"
    POINTS = "points", "Points"


class BoostStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"


BOOST_TRANSITIONS = Transitions(
    {
        BoostStatus.ACTIVE: {BoostStatus.EXPIRED},
        BoostStatus.EXPIRED: set(),
    }
)


class Boost(models.Model):
    """Multiplies (`multiplier`) or adds to (`points`) a user's score while it runs."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="boosts"
    )
    kind = models.CharField(max_length=16, choices=BoostKind.choices)
    value = models.DecimalField(max_digits=10, decimal_places=2)
    starts_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=BoostStatus.choices, default=BoostStatus.ACTIVE
    )
    expired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(value__gt=0), name="boost_value_positive"),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("starts_at")), name="boost_ends_after_start"
            ),
            models.CheckConstraint(
                condition=Q(status="active", expired_at__isnull=True)
                | Q(status="expired", expired_at__isnull=False),
                name="boost_expired_at_matches_status",
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at", "id"],
                condition=Q(status="active"),
                name="boost_active_due",
            ),
            models.Index(fields=["user"], condition=Q(status="active"), name="boost_active_user"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} boost {self.value} for user {self.user_id} ({self.status})"


class Game(models.TextChoices):
    SNAKE = "snake", "Snake"
    TETRIS = "tetris", "Tetris"
    PONG = "pong", "Pong"
    BREAKOUT = "breakout", "Breakout"
    SPACE_INVADERS = "space_invaders", "Space Invaders"


class SessionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    EXPIRED = "expired", "Expired"


SESSION_TRANSITIONS = Transitions(
    {
        SessionStatus.ACTIVE: {SessionStatus.COMPLETED, SessionStatus.EXPIRED},
        SessionStatus.COMPLETED: set(),
        SessionStatus.EXPIRED: set(),
    }
)


class GameSession(models.Model):
    player = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="game_sessions"
    )
    game = models.CharField(max_length=16, choices=Game.choices)
    status = models.CharField(
        max_length=16, choices=SessionStatus.choices, default=SessionStatus.ACTIVE
    )
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status="active", ended_at__isnull=True)
                | (~Q(status="active") & Q(ended_at__isnull=False)),
                name="session_ended_at_matches_status",
            ),
        ]
        indexes = [
            models.Index(
                fields=["started_at", "id"],
                condition=Q(status="active"),
                name="session_active_started",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.game} session #{self.pk} ({self.status})"


class Score(models.Model):
    """Points of one game; a score whose session is gone (null) is an orphan."""

    player = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="scores"
    )
    game = models.CharField(max_length=16, choices=Game.choices)
    points = models.BigIntegerField()
    achieved_at = models.DateTimeField()
    session = models.ForeignKey(
        GameSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="scores"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(points__gte=0), name="score_points_not_negative"),
        ]
        indexes = [
            models.Index(fields=["game", "achieved_at"], name="score_game_achieved"),
            models.Index(fields=["achieved_at", "id"], name="score_achieved"),
            models.Index(fields=["id"], condition=Q(session__isnull=True), name="score_orphan"),
        ]

    def __str__(self) -> str:
        return f"{self.game} {self.points} by user {self.player_id}"


class ArchivedScore(models.Model):
    """A score moved out of the live table by `cleanup`; it keeps the score's id."""

    id = models.BigIntegerField(primary_key=True)
    player = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    game = models.CharField(max_length=16, choices=Game.choices)
    points = models.BigIntegerField()
    achieved_at = models.DateTimeField()
    # A plain id: the archive outlives the sessions it points to.
    session_id = models.BigIntegerField(null=True, blank=True)
    archived_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["game", "-points"], name="archivedscore_game_points")]

    def __str__(self) -> str:
        return f"archived {self.game} {self.points} by user {self.player_id}"


class PoolPeriod(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly (ISO week from Monday)"


class PoolStatus(models.TextChoices):
    OPEN = "open", "Open"
    FINALIZED = "finalized", "Finalized"
    NO_WINNER = "no_winner", "No winner"


POOL_TRANSITIONS = Transitions(
    {
        PoolStatus.OPEN: {PoolStatus.FINALIZED, PoolStatus.NO_WINNER},
        PoolStatus.FINALIZED: set(),
        PoolStatus.NO_WINNER: set(),
    }
)


class PrizePool(models.Model):
    """One game's pool for one day or ISO week, funded by entry fees into `pool:<id>`."""

    game = models.CharField(max_length=16, choices=Game.choices)
    period = models.CharField(max_length=8, choices=PoolPeriod.choices)
    period_start = models.DateField(help_text="UTC day, or the Monday of the ISO week.")
    amount = models.BigIntegerField(default=0, help_text="In kobo: the entry fees paid in.")
    status = models.CharField(max_length=16, choices=PoolStatus.choices, default=PoolStatus.OPEN)
    winner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="prizes_won",
    )
    winning_score = models.BigIntegerField(null=True, blank=True, help_text="Points.")
    winning_score_pk = models.BigIntegerField(
        null=True, blank=True, help_text="Id of the winning score (kept when archived)."
    )
    finalized_at = models.DateTimeField(null=True, blank=True)
    finalized_by_run = models.ForeignKey(
        "jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["game", "period", "period_start"], name="pool_one_per_game_period"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="pool_amount_not_negative"),
            models.CheckConstraint(
                condition=Q(status="open", winner__isnull=True, finalized_at__isnull=True)
                | Q(status="finalized", winner__isnull=False, finalized_at__isnull=False)
                | Q(status="no_winner", winner__isnull=True, finalized_at__isnull=False),
                name="pool_outcome_matches_status",
            ),
        ]
        indexes = [
            models.Index(
                fields=["period_start", "id"], condition=Q(status="open"), name="pool_open"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.game} {self.period} pool {self.period_start} ({self.status})"
