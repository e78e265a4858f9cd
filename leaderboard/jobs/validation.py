"""The leaderboards' hourly validation: every board as the public API reads it."""

from datetime import timedelta

from rest_framework import serializers

from jobs.alerts import alert_send
from jobs.context import JobContext
from jobs.registry import JobSpec, register
from jobs.selectors import job_run_finished_since
from leaderboard.models import Game
from leaderboard.services.validation import leaderboards_validate

VALIDATION_REALERT_AFTER = timedelta(hours=1)


class ValidateLeaderboardsParams(serializers.Serializer):
    game = serializers.ChoiceField(
        choices=Game.choices, required=False, help_text="Validate just this game's boards."
    )


def validate_leaderboards(context: JobContext) -> dict:
    """Alerts once for a set of failing boards: not again while a run within the last
    VALIDATION_REALERT_AFTER already reported the same boards."""
    log = context.log
    log.info("Starting leaderboard validation...")
    validation = leaderboards_validate(as_of=context.as_of, game=context.params.get("game"))
    for check in validation.checks:
        if check.error:
            log.error("Failed to validate %s: %s", check.board, check.error)
        else:
            log.info("Validated %s: %s entries", check.board, f"{check.entries:,}")
    summary = validation.as_summary()
    log.info("Leaderboard Validation Summary:")
    log.info("   Leaderboards processed: %s", f"{summary['leaderboards_processed']:,}")
    log.info("   Entries validated: %s", f"{summary['entries_validated']:,}")
    log.info("   Errors: %s", f"{summary['errors']:,}")
    failing = summary["failing_boards"]
    if not failing:
        return {"dry_run": True, **summary} if context.dry_run else summary
    context.mark_partial(f"leaderboards failing validation: {', '.join(failing)}")
    if context.dry_run:
        return {"dry_run": True, **summary}
    reported = job_run_finished_since(
        job=context.run.job,
        since=context.as_of - VALIDATION_REALERT_AFTER,
        summary={"alerted_boards": failing},
    )
    if not reported:
        alert_send(
            subject=f"[Steward] {len(failing)} leaderboards failing validation",
            message="\n".join(f"{board}: {summary['board_errors'][board]}" for board in failing),
            run=context.run,
        )
    # The boards the operators have been alerted about, by this run or the one before.
    return {**summary, "alerted": not reported, "alerted_boards": failing}


def register_validation_jobs() -> None:
    register(
        JobSpec(
            name="validate_leaderboards",
            body=validate_leaderboards,
            cron="0 * * * *",
            params=ValidateLeaderboardsParams,
            # It alerts itself, once while the same boards keep failing.
            alert_partial=False,
            description="Check every game x period board as the public API reads it (ranks "
            "1, 2, 3, ... in order, a sample equal to a recompute) and the main leaderboard's "
            "ranks; a failing board ends the run partial and alerts once.",
        )
    )
