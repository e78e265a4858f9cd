"""The milestone check's body and registration, and the parameters of the check that
follows a release: the users whose escrows it released."""

from __future__ import annotations

from rest_framework import serializers

from jobs.context import JobContext
from jobs.models import JobRun
from jobs.params import MAX_IDS, IdListField
from jobs.registry import JobSpec, register
from ledger.models import Escrow
from ledger.services.milestones import (
    milestones_check,
    milestones_check_preview,
    milestones_of_run_text,
    milestones_users_to_check,
)


class CheckMilestonesParams(serializers.Serializer):
    user_ids = IdListField(required=False, help_text="Check just these users' milestones.")


def check_milestones(context: JobContext) -> dict:
    user_ids = context.params.get("user_ids")
    context.log.info("Starting milestone check job...")
    if context.dry_run:
        return {
            "dry_run": True,
            **milestones_check_preview(batch_size=context.batch_size, user_ids=user_ids),
        }
    total = milestones_users_to_check(user_ids=user_ids)
    context.log.info("Checking milestones for %s users", f"{total:,}")
    summary = milestones_check(
        job_run=context.run,
        batch_size=context.batch_size,
        on_progress=lambda done: context.progress(done=done, total=total, what="users"),
        user_ids=user_ids,
        log=context.log,
    )
    reached = summary["milestones_reached"]
    context.log.info(
        "Milestone check job completed. Checked %s users, %s milestones reached%s.",
        f"{summary['users_checked']:,}",
        f"{reached:,}",
        f" ({milestones_of_run_text(summary['milestones_by_kind'])})" if reached else "",
    )
    return summary


def milestones_after_release(run: JobRun) -> dict | None:
    """The check that follows a release run: the donors and recipients of the escrows it
    (or its shards) released; None when it released none; every user ({}) when they are
    more than a targeted run takes."""
    if not run.summary.get("escrows_released"):
        return None
    runs = [run.pk, *run.shards.values_list("pk", flat=True)]
    released = Escrow.objects.filter(released_by_run__in=runs)
    donors = released.values_list("donor__user_id", flat=True)
    recipients = released.values_list("recipient__user_id", flat=True)
    # One more than a targeted run takes is enough to know a full sweep is needed.
    user_ids = list(donors.union(recipients)[: MAX_IDS + 1])
    if not user_ids:
        return None
    if len(user_ids) > MAX_IDS:
        return {}
    return {"user_ids": sorted(user_ids)}


def register_milestone_jobs() -> None:
    register(
        JobSpec(
            name="check_milestones",
            body=check_milestones,
            cron="30 0 * * *",
            params=CheckMilestonesParams,
            concurrent_targets=True,
            work_keys=("milestones_reached",),
            description="Record users' milestones (the 1st, 5th, 10th, 25th and 50th fulfilled "
            "cycle; 500, 1,000 and 5,000 Charity Coins held) once each, with a push "
            "notification and the MILESTONE_BONUS_COINS bonus; also after each release.",
        )
    )
