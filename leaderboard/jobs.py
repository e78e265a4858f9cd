"""The leaderboard's job bodies and their registration. Each adapts the run context to a
service."""

from rest_framework import serializers

from jobs.context import JobContext
from jobs.registry import JobSpec, register
from leaderboard.models import Game, PoolPeriod
from leaderboard.services.cleanup import (
    CLEANUP_STEPS,
    cleanup_archives,
    cleanup_preview,
    cleanup_run,
    scores_archive_due,
    scores_to_archive,
)
from leaderboard.services.featured import featured_rotate, featured_rotate_preview
from leaderboard.services.pools import prize_pools_finalize_due
from leaderboard.services.standings import (
    boosts_due,
    boosts_expire_due,
    leaderboard_recompute,
    leaderboard_recompute_preview,
)


class FinalizePrizePoolsParams(serializers.Serializer):
    game = serializers.ChoiceField(
        choices=Game.choices, required=False, help_text="Finalize just this game's pools."
    )
    period = serializers.ChoiceField(
        choices=PoolPeriod.choices,
        required=False,
        help_text="Finalize just this period's pools (daily or weekly).",
    )


class CleanupStepsField(serializers.ListField):
    """Steps in the order they run, each once, so equal choices are equal parameters."""

    def to_internal_value(self, data):
        chosen = set(super().to_internal_value(data))
        return [step for step in CLEANUP_STEPS if step in chosen]


class CleanupParams(serializers.Serializer):
    steps = CleanupStepsField(
        child=serializers.ChoiceField(choices=CLEANUP_STEPS),
        min_length=1,
        required=False,
        help_text="Run just these steps (always in the order "
        f"{', '.join(CLEANUP_STEPS)}); all of them when not given.",
    )


def update_leaderboard(context: JobContext) -> dict:
    if context.dry_run:
        expiring = boosts_due(as_of=context.as_of).count()
        preview = leaderboard_recompute_preview(as_of=context.as_of)
        return {"dry_run": True, "boosts_expired": expiring, **preview}
    expired = boosts_expire_due(
        as_of=context.as_of,
        on_progress=lambda done: context.progress(done=done, total=None, what="boosts expired"),
    )
    context.log.info("Expired %s boosts; recomputing scores", f"{expired:,}")
    summary = leaderboard_recompute(as_of=context.as_of)
    context.log.info(
        "Ranked %s users (%s entries created, %s updated, %s removed)",
        f"{summary['users_ranked']:,}",
        f"{summary['entries_created']:,}",
        f"{summary['entries_updated']:,}",
        f"{summary['entries_removed']:,}",
    )
    return {"boosts_expired": expired, **summary}


def finalize_prize_pools(context: JobContext) -> dict:
    summary = prize_pools_finalize_due(
        as_of=context.as_of,
        job_run=context.run,
        dry_run=context.dry_run,
        game=context.params.get("game"),
        period=context.params.get("period"),
    )
    for game, outcome in summary["games"].items():
        for pool in outcome["pools"]:
            if pool["outcome"] == "failed":
                message = f"{game} {pool['period']} pool #{pool['pool']}: {pool['error']}"
                if context.dry_run:
                    context.log.warning("Would fail: %s", message)
                else:
                    context.mark_partial(message)
            else:
                context.log.info(
                    "%s %s pool #%s (%s, %s): %s",
                    "Would finalize" if context.dry_run else "Finalized",
                    pool["period"],
                    pool["pool"],
                    game,
                    pool["period_start"],
                    f"winner user #{pool['winner_id']}, prize {pool['prize']}"
                    if pool["outcome"] == "finalized"
                    else "no games played",
                )
    return {"dry_run": True, **summary} if context.dry_run else summary


def cleanup(context: JobContext) -> dict:
    """A large score archive fans out into shard runs, which archive only; the parent does
    the other steps itself."""
    steps = context.params.get("steps")
    if context.dry_run:
        return {"dry_run": True, **cleanup_preview(as_of=context.as_of, steps=steps)}
    progress = {
        "batch_size": context.batch_size,
        "on_progress": lambda done: context.progress(done=done, total=None, what="rows cleaned"),
    }
    if context.pk_range is not None:
        archived = scores_archive_due(as_of=context.as_of, pk_range=context.pk_range, **progress)
        return {"scores_archived": archived}
    fan_out = cleanup_archives(steps=steps) and context.should_fan_out(
        scores_to_archive(as_of=context.as_of).count()
    )
    summary = cleanup_run(as_of=context.as_of, archive=not fan_out, steps=steps, **progress)
    context.log.info("Cleanup: %s", summary)
    if fan_out:
        return context.fan_out(scores_to_archive(as_of=context.as_of), summary=summary)
    return summary


def rotate_featured(context: JobContext) -> dict:
    if context.dry_run:
        return {"dry_run": True, **featured_rotate_preview(as_of=context.as_of)}
    summary = featured_rotate(as_of=context.as_of)
    context.log.info(
        "Featured users %s for %s (drawn from %s)",
        summary["featured"],
        summary["week"],
        summary["candidates"],
    )
    return summary


def register_leaderboard_jobs() -> None:
    register(
        JobSpec(
            name="update_leaderboard",
            body=update_leaderboard,
            cron="0 0 * * *",
            description="Expire ended boosts; recompute every active user's score from "
            "fulfilled cycles and boosts; rank 1, 2, 3, ... (ties by user id).",
        )
    )
    register(
        JobSpec(
            name="finalize_prize_pools",
            body=finalize_prize_pools,
            cron="0 0 * * *",
            queue="money",
            money_keys=("prize_paid",),
            params=FinalizePrizePoolsParams,
            # Each pool is finalized under its row lock after checking it is still open, so
            # a sweep and a targeted run reaching one pool finalize it once.
            concurrent_targets=True,
            catch_up=True,
            description="Finalize every ended open prize pool (daily, and weekly once the ISO "
            "week ended): pay the top score by transfer, or no_winner; one game's failure "
            "leaves the others going and ends the run partial.",
        )
    )
    register(
        JobSpec(
            name="cleanup",
            body=cleanup,
            cron="0 3 * * *",
            params=CleanupParams,
            description="Delete stale active game sessions and orphaned scores, archive old "
            "scores, prune sent notifications.",
        )
    )
    register(
        JobSpec(
            name="rotate_featured",
            body=rotate_featured,
            cron="0 0 * * 1",
            description="Feature 3 users drawn from the top 10, reproducibly for the ISO week; "
            "clear last week's.",
        )
    )
