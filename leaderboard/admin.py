"""The leaderboard in the admin: rows only services write, read-only, and the guarded job
action on prize pools; a pool's page links to the runs that changed it."""

from django.contrib import admin

from jobs.admin.tools import (
    EntityRunsLink,
    JobPermissions,
    MoneyFieldsAdmin,
    ReadOnlyAdmin,
    enqueue_job_action,
    money_display,
    status_badge,
)
from leaderboard.models import (
    ArchivedScore,
    Boost,
    GameSession,
    LeaderboardEntry,
    PrizePool,
    Score,
)


@admin.register(LeaderboardEntry)
class LeaderboardEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "rank",
        "user",
        "score",
        "cycles_completed",
        "average_completion_days",
        "featured",
        "featured_week",
        "updated_at",
    )
    list_filter = ("featured",)
    search_fields = ("user__username",)
    list_select_related = ("user",)


@admin.register(Boost)
class BoostAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "kind", "value", "starts_at", "expires_at", "status")
    list_filter = ("status", "kind")
    search_fields = ("user__username",)
    list_select_related = ("user",)


@admin.register(GameSession)
class GameSessionAdmin(ReadOnlyAdmin):
    list_display = ("id", "player", "game", "status", "started_at", "ended_at")
    list_filter = ("status", "game")
    search_fields = ("player__username",)
    list_select_related = ("player",)


@admin.register(Score)
class ScoreAdmin(ReadOnlyAdmin):
    list_display = ("id", "player", "game", "points", "achieved_at", "session")
    list_filter = ("game",)
    search_fields = ("player__username",)
    list_select_related = ("player",)


@admin.register(ArchivedScore)
class ArchivedScoreAdmin(ReadOnlyAdmin):
    list_display = ("id", "player", "game", "points", "achieved_at", "archived_at")
    list_filter = ("game",)
    search_fields = ("player__username",)
    list_select_related = ("player",)


@admin.register(PrizePool)
class PrizePoolAdmin(EntityRunsLink, JobPermissions, MoneyFieldsAdmin, ReadOnlyAdmin):
    run_entity = "pool"
    money_fields = ("amount",)
    amount_text = money_display("amount")
    list_display = (
        "id",
        "game",
        "period",
        "period_start",
        "amount_text",
        "status_text",
        "winner",
        "winning_score",
        "finalized_at",
        "finalized_by_run",
    )
    list_filter = ("status", "period", "game")
    date_hierarchy = "period_start"
    list_select_related = ("winner", "finalized_by_run")
    actions = ["finalize_ended_pools"]

    @admin.display(description="status", ordering="status")
    def status_text(self, pool: PrizePool):
        return status_badge(pool.status, pool.get_status_display())

    @admin.action(description="Finalize ended pools now", permissions=["trigger"])
    def finalize_ended_pools(self, request, queryset):
        return enqueue_job_action(
            self, request, job="finalize_prize_pools", label="Finalize ended pools now"
        )
