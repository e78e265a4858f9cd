"""The books' jobs: the daily balance snapshot and the reconciliation of the ledger."""

from jobs.context import JobContext
from jobs.registry import JobSpec, register
from ledger.selectors import money_text
from ledger.services.reconcile import ledger_reconcile
from ledger.services.snapshots import (
    balances_snapshot_preview,
    balances_snapshot_take,
    snapshot_day,
)


def snapshot_balances(context: JobContext) -> dict:
    day = snapshot_day(context.as_of).isoformat()
    if context.dry_run:
        preview = balances_snapshot_preview(as_of=context.as_of)
        if preview["already_taken"]:
            context.log.info("Dry run: snapshot of %s already taken", day)
        else:
            context.log.info(
                "Dry run: would snapshot %s wallets and %s accounts for %s, %s held",
                f"{preview['wallets_to_snapshot']:,}",
                f"{preview['accounts_to_snapshot']:,}",
                day,
                money_text(preview["money_held"]),
            )
        return {"dry_run": True, **preview}
    context.log.info("Taking the balance snapshot of %s", day)
    summary = balances_snapshot_take(
        as_of=context.as_of,
        batch_size=context.batch_size,
        job_run=context.run,
        on_progress=lambda done, total, what: context.progress(done=done, total=total, what=what),
    )
    if summary["already_taken"]:
        context.log.info("Snapshot of %s already taken", day)
    else:
        context.log.info(
            "Balance snapshot of %s completed: %s wallets and %s accounts snapshotted, %s held",
            day,
            f"{summary['wallets_snapshotted']:,}",
            f"{summary['accounts_snapshotted']:,}",
            money_text(summary["money_held"]),
        )
    if summary["snapshots_deleted"]:
        context.log.info(
            "Deleted %s snapshots past their retention (%s rows)",
            summary["snapshots_deleted"],
            f"{summary['snapshot_rows_deleted']:,}",
        )
    return summary


def reconcile_ledger(context: JobContext) -> dict:
    """Read-only, so a dry run is the same check."""
    context.log.info("Starting ledger reconciliation...")
    report = ledger_reconcile()
    for check in report["checks"]:
        if check["ok"]:
            context.log.info("Check %s: ok%s", check["check"], _note(check))
        else:
            context.log.error(
                "Check %s: %s difference(s), e.g. %s",
                check["check"],
                check["differences"],
                check["sample"][:3],
            )
    checked = len(report["checks"])
    transfers = sum(totals["transfers"] for totals in report["transfer_totals"].values())
    if report["clean"]:
        context.log.info(
            "Ledger reconciliation completed. %s checks clean over %s transfers.",
            checked,
            f"{transfers:,}",
        )
        return report
    failed = [check["check"] for check in report["checks"] if not check["ok"]]
    context.log.error(
        "Ledger reconciliation completed. %s of %s checks found differences over %s transfers.",
        len(failed),
        checked,
        f"{transfers:,}",
    )
    context.mark_partial(f"ledger differences found: {', '.join(failed)}")
    return report


def _note(check: dict) -> str:
    return f" ({check['note']})" if check.get("note") else ""


def register_books_jobs() -> None:
    register(
        JobSpec(
            name="snapshot_balances",
            body=snapshot_balances,
            cron="5 0 * * *",
            description="Snapshot every wallet's and system account's balances once a day, "
            "for the money-held trend and the reconciliation; delete snapshots past "
            "BALANCE_SNAPSHOT_RETENTION_DAYS.",
            money_keys=("total_spendable", "total_receivable", "pools_money", "money_held"),
            work_keys=("wallets_snapshotted", "accounts_snapshotted", "snapshots_deleted"),
        )
    )
    register(
        JobSpec(
            name="reconcile_ledger",
            body=reconcile_ledger,
            cron="30 3 * * *",
            description="Prove debits = credits per asset, cached balances = transfer replay "
            "and = the latest snapshot plus the transfers after it, no negative balance, and "
            "per donation, escrow, pool and milestone the bookings it should have, whatever "
            "their reference; alert on any difference.",
        )
    )
