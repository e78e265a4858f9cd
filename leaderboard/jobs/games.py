"""The games' jobs: the leaderboard's recompute, prize pools, cleanup and the featured users.
Each adapts the run context to a service."""

from rest_framework import serializers

from jobs.context import JobContext
from jobs.panels import money_text
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

# A batch of pools logs a line for each of its first POOL_LINES, then how many more.
POOL_LINES = 20


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
    log = context.log
    log.info("Starting leaderboard update job...")
    if context.dry_run:
        expiring = boosts_due(as_of=context.as_of).count()
        log.info("Would expire %s leaderboard boosts", f"{expiring:,}")
        preview = leaderboard_recompute_preview(as_of=context.as_of)
        log.info("Would recalculate scores for %s users", f"{preview['users_ranked']:,}")
        log.info(
            "Leaderboard recalculation previewed. Would update %s users.",
            f"{preview['users_ranked']:,}",
        )
        return {"dry_run": True, "boosts_expired": expiring, **preview}
    expired = boosts_expire_due(
        as_of=context.as_of,
        on_progress=lambda done: context.progress(done=done, total=None, what="boosts expired"),
    )
    log.info("Expired %s leaderboard boosts", f"{expired:,}")
    # The count of users comes from the recompute's own standings: a separate count query
    # would be another pass over the wallets and accounts.
    summary = leaderboard_recompute(
        as_of=context.as_of,
        on_ranked=lambda users: log.info("Recalculating scores for %s users", f"{users:,}"),
    )
    log.info(
        "Leaderboard recalculation complete. Updated %s users.", f"{summary['users_ranked']:,}"
    )
    log.info("Leaderboard update job completed successfully")
    return {"boosts_expired": expired, **summary}


def _pool_text(game: str, pool: dict) -> str:
    return f"{pool['period']} pool #{pool['pool']} ({game}, {pool['period_start']})"


def finalize_prize_pools(context: JobContext) -> dict:
    """One line a pool (a winner's pool two) for the first POOL_LINES pools, then a count."""
    log = context.log
    log.info("Starting prize pool calculation...")
    summary = prize_pools_finalize_due(
        as_of=context.as_of,
        job_run=context.run,
        dry_run=context.dry_run,
        game=context.params.get("game"),
        period=context.params.get("period"),
    )
    pools = [
        (game, pool) for game, outcome in summary["games"].items() for pool in outcome["pools"]
    ]
    would = "Would finalize" if context.dry_run else "Finalized"
    for game, pool in pools[:POOL_LINES]:
        if pool["outcome"] == "failed":
            reason = f"{game} {pool['period']} pool #{pool['pool']}: {pool['error']}"
            if context.dry_run:
                log.warning("Would fail: %s", reason)
            else:
                context.mark_partial(reason)
        elif pool["outcome"] == "finalized":
            log.info("%s %s", would, _pool_text(game, pool))
            log.info(
                "   Winner: user #%s - Prize: %s", pool["winner_id"], money_text(pool["prize"])
            )
        else:
            log.info("%s %s: no winner, no games played", would, _pool_text(game, pool))
    if len(pools) > POOL_LINES:
        rest = pools[POOL_LINES:]
        failed = sum(1 for _game, pool in rest if pool["outcome"] == "failed")
        log.info("... and %s more pools (in the run's summary)", f"{len(rest):,}")
        if failed and not context.dry_run:
            context.mark_partial(f"{failed:,} more pools failed (in the run's summary)")
    log.info("Prize Pool Calculation Summary:")
    log.info("   Pools processed: %s", f"{len(pools):,}")
    log.info("   Pools finalized: %s", f"{summary['pools_finalized']:,}")
    log.info("   Pools without a winner: %s", f"{summary['pools_no_winner']:,}")
    log.info("   Errors: %s", f"{summary['pools_failed']:,}")
    return {"dry_run": True, **summary} if context.dry_run else summary


# Each cleanup step's count: its line in the seed's words, a dry run's, its summary label.
_CLEANUP_LINES = (
    (
        "sessions_deleted",
        "Deleted %s expired sessions",
        "Would delete %s expired sessions",
        "Expired sessions deleted",
    ),
    (
        "orphan_scores_deleted",
        "Cleaned %s orphaned leaderboard entries",
        "Would clean %s orphaned leaderboard entries",
        "Orphaned entries cleaned",
    ),
    (
        "scores_archived",
        "Archived %s leaderboard entries",
        "Would archive %s leaderboard entries",
        "Leaderboard entries archived",
    ),
    (
        "notifications_deleted",
        "Deleted %s sent notifications",
        "Would delete %s sent notifications",
        "Sent notifications deleted",
    ),
)


def _log_cleanup(context: JobContext, counts: dict, *, sharded: int | None = None) -> None:
    """Each step's line, then the summary block; `sharded` scores are left to shard runs."""
    log = context.log
    for key, done, would, _label in _CLEANUP_LINES:
        if key not in counts:
            continue
        if key == "scores_archived" and not counts["archiving"]:
            log.info("Leaderboard archiving disabled")
        elif key == "scores_archived" and sharded is not None:
            log.info("Archiving %s leaderboard entries in shard runs", f"{sharded:,}")
        elif key == "scores_archived" and not counts[key]:
            log.info("Leaderboard archiving enabled (no entries to archive)")
        else:
            log.info(would if context.dry_run else done, f"{counts[key]:,}")
    log.info("Cleanup Summary:")
    for key, _done, _would, label in _CLEANUP_LINES:
        if key in counts and not (key == "scores_archived" and sharded is not None):
            log.info("   %s: %s", label, f"{counts[key]:,}")


def cleanup(context: JobContext) -> dict:
    """A large score archive fans out into shard runs, which archive only; the parent does
    the other steps itself."""
    steps = context.params.get("steps")
    if context.pk_range is None:
        context.log.info("Starting cleanup job...")
    if context.dry_run:
        preview = cleanup_preview(as_of=context.as_of, steps=steps)
        _log_cleanup(context, preview)
        return {"dry_run": True, **preview}
    progress = {
        "batch_size": context.batch_size,
        "on_progress": lambda done: context.progress(done=done, total=None, what="rows cleaned"),
    }
    if context.pk_range is not None:
        archived = scores_archive_due(as_of=context.as_of, pk_range=context.pk_range, **progress)
        context.log.info(
            "Archived %s leaderboard entries (ids %s to %s)", f"{archived:,}", *context.pk_range
        )
        return {"scores_archived": archived}
    backlog = scores_to_archive(as_of=context.as_of).count() if cleanup_archives(steps=steps) else 0
    fan_out = bool(backlog) and context.should_fan_out(backlog)
    summary = cleanup_run(as_of=context.as_of, archive=not fan_out, steps=steps, **progress)
    _log_cleanup(context, summary, sharded=backlog if fan_out else None)
    if fan_out:
        return context.fan_out(scores_to_archive(as_of=context.as_of), summary=summary)
    return summary


def rotate_featured(context: JobContext) -> dict:
    log = context.log
    log.info("Starting featured user rotation...")
    if context.dry_run:
        preview = featured_rotate_preview(as_of=context.as_of)
        for user_id in preview["featured"]:
            log.info("Would feature user #%s for %s", user_id, preview["week"])
        return {"dry_run": True, **preview}
    summary = featured_rotate(as_of=context.as_of)
    for user_id in summary["featured"]:
        log.info("Featured user #%s for %s", user_id, summary["week"])
    log.info(
        "Featured user rotation completed: %s of the top %s featured, %s cleared",
        len(summary["featured"]),
        len(summary["candidates"]),
        summary["featured_cleared"],
    )
    return summary


def register_game_jobs() -> None:
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
