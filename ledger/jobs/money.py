"""The money-moving jobs' bodies and their registration: releases, expiries, cycles, the
business lag and the outbox's delivery. Each adapts the run context to a service."""

from datetime import timedelta

from django.conf import settings
from rest_framework import serializers

from jobs.alerts import alert_send
from jobs.context import JobContext
from jobs.params import IdListField
from jobs.registry import FollowUp, JobSpec, register
from jobs.selectors import job_run_finished_since
from ledger.jobs.milestones import milestones_after_release
from ledger.selectors import escrow_release_lag, money_text
from ledger.services.cycles import cycles_remind_and_default, cycles_remind_and_default_preview
from ledger.services.delivery import (
    notifications_deliver_due,
    notifications_deliver_preview,
    notifications_due,
)
from ledger.services.escrows import escrows_due, escrows_release_due, escrows_release_preview
from ledger.services.matches import matches_due, matches_expire_due, matches_expire_preview

LAG_REALERT_AFTER = timedelta(hours=1)


class ReleaseEscrowsParams(serializers.Serializer):
    escrow_ids = IdListField(
        required=False,
        help_text="Release just these escrows (still only when due and still holding); "
        "the others are reported, not released.",
    )


class ExpireMatchesParams(serializers.Serializer):
    match_ids = IdListField(
        required=False,
        help_text="Expire just these matches (still only when pending and past their expiry).",
    )


class CycleRemindersParams(serializers.Serializer):
    user_ids = IdListField(
        required=False, help_text="Remind and default just the cycles of these users."
    )


def release_escrows(context: JobContext) -> dict:
    scope = {
        "as_of": context.as_of,
        "pk_range": context.pk_range,
        "escrow_ids": context.params.get("escrow_ids"),
    }
    due_rows = escrows_due(**scope)
    due = due_rows.count()
    # Only with work to do: a run that finds nothing logs its one "nothing to do" line.
    if due:
        context.log.info("Starting escrow release job...")
        context.log.info("Found %s escrows ready for release", f"{due:,}")
    if context.dry_run:
        return {"dry_run": True, **escrows_release_preview(**scope)}
    # A targeted release is at most a thousand escrows: never worth shard runs.
    if not context.params and context.should_fan_out(due):
        return context.fan_out(due_rows, summary={"escrows_due": due})
    summary = escrows_release_due(
        job_run=context.run,
        batch_size=context.batch_size,
        on_progress=lambda done: context.progress(done=done, total=due, what="escrows"),
        log=context.log,
        **scope,
    )
    if due:
        context.log.info(
            "Escrow release job completed. Processed %s escrows.",
            f"{summary['escrows_released']:,}",
        )
    if failed := summary.get("escrows_failed"):
        ids = ", ".join(str(row["escrow_id"]) for row in summary["failed_escrows"])
        context.mark_partial(f"{failed} escrows could not be released (ids {ids})")
    return summary


def expire_matches(context: JobContext) -> dict:
    scope = {"as_of": context.as_of, "match_ids": context.params.get("match_ids")}
    if matches_due(**scope).exists():
        context.log.info("Starting match expiration job...")
    if context.dry_run:
        return {"dry_run": True, **matches_expire_preview(**scope)}
    summary = matches_expire_due(
        batch_size=context.batch_size,
        run_id=context.run.pk,
        on_progress=lambda done: context.progress(done=done, total=None, what="matches"),
        **scope,
    )
    if summary["matches_expired"]:
        context.log.info("Expired %s matches", f"{summary['matches_expired']:,}")
    return summary


def cycle_reminders(context: JobContext) -> dict:
    scope = {"as_of": context.as_of, "user_ids": context.params.get("user_ids")}
    if context.dry_run:
        return {"dry_run": True, **cycles_remind_and_default_preview(**scope)}
    return cycles_remind_and_default(
        batch_size=context.batch_size,
        run_id=context.run.pk,
        on_progress=lambda done: context.progress(done=done, total=None, what="cycles"),
        log=context.log,
        **scope,
    )


def deliver_notifications(context: JobContext) -> dict:
    if context.dry_run:
        preview = notifications_deliver_preview(as_of=context.as_of, pk_range=context.pk_range)
        return {"dry_run": True, **preview}
    due_rows = notifications_due(as_of=context.as_of, pk_range=context.pk_range)
    if context.run.parent_id is None and context.should_fan_out(backlog := due_rows.count()):
        return context.fan_out(due_rows, summary={"notifications_due": backlog})
    summary = notifications_deliver_due(
        as_of=context.as_of,
        batch_size=context.batch_size,
        on_progress=lambda done: context.progress(done=done, total=None, what="notifications"),
        pk_range=context.pk_range,
        log=context.log,
    )
    if summary["sent"] or summary["retry_scheduled"] or summary["failed"]:
        context.log.info(
            "Delivered %s notifications (%s retrying, %s failed)",
            f"{summary['sent']:,}",
            summary["retry_scheduled"],
            summary["failed"],
        )
    return summary


def monitor_business_lag(context: JobContext) -> dict:
    """Alert when escrows wait for release longer than the threshold (at most hourly)."""
    lag = escrow_release_lag(as_of=context.as_of)
    threshold = settings.ESCROW_LAG_ALERT_MINUTES * 60
    lagging = lag.oldest_overdue_seconds > threshold
    alert = (
        lagging
        and not context.dry_run
        and not job_run_finished_since(
            job=context.run.job,
            since=context.as_of - LAG_REALERT_AFTER,
            summary={"alerted": True},
        )
    )
    if lagging:
        context.log.warning(
            "%s escrows overdue for release (%s), the oldest by %.0f minutes",
            f"{lag.overdue_count:,}",
            money_text(lag.overdue_amount),
            lag.oldest_overdue_seconds / 60,
        )
    if alert:
        alert_send(
            subject=f"[Steward] {lag.overdue_count:,} escrows overdue for release",
            message=(
                f"{lag.overdue_count:,} escrows ({money_text(lag.overdue_amount)}) are past "
                "their hold; "
                f"the oldest by {lag.oldest_overdue_seconds / 60:.0f} minutes (threshold "
                f"{settings.ESCROW_LAG_ALERT_MINUTES}). Check the workers and release_escrows."
            ),
            run=context.run,
        )
    return {**lag.as_dict(), "threshold_seconds": threshold, "lagging": lagging, "alerted": alert}


def register_money_jobs() -> None:
    register(
        JobSpec(
            name="release_escrows",
            body=release_escrows,
            cron="0 * * * *",
            queue="money",
            money_keys=("amount_released",),
            params=ReleaseEscrowsParams,
            concurrent_targets=True,
            catch_up=True,
            follow_ups=(FollowUp(job="check_milestones", params=milestones_after_release),),
            description="Release escrows whose 48-hour hold has ended: receivable to "
            "spendable, cycle obligated, donor +50 Charity Coins, both notified.",
        )
    )
    register(
        JobSpec(
            name="expire_matches",
            body=expire_matches,
            cron="0 */6 * * *",
            money_keys=("amount_unmatched",),
            params=ExpireMatchesParams,
            concurrent_targets=True,
            catch_up=True,
            description="Expire pending matches not accepted within 24 hours; notify the donor.",
        )
    )
    register(
        JobSpec(
            name="cycle_reminders",
            body=cycle_reminders,
            cron="0 9 * * *",
            params=CycleRemindersParams,
            concurrent_targets=True,
            catch_up=True,
            description="Remind once for obligated cycles due within 7 days; default overdue "
            "cycles with a -0.10 trust penalty.",
        )
    )
    register(
        JobSpec(
            name="monitor_business_lag",
            body=monitor_business_lag,
            cron="*/5 * * * *",
            money_keys=("overdue_amount",),
            work_keys=("lagging",),
            description="Alert when escrows are overdue for release by more than "
            "ESCROW_LAG_ALERT_MINUTES (re-alerting at most hourly).",
        )
    )
    register(
        JobSpec(
            name="deliver_notifications",
            body=deliver_notifications,
            cron="* * * * *",
            queue="notifications",
            description="Send pending outbox rows through their channel (email, push, SMS), "
            "each at most once; retry failures with backoff; rate-limited per channel.",
        )
    )
