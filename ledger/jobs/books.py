"""The books' jobs: the reconciliation of the ledger."""

from jobs.context import JobContext
from jobs.registry import JobSpec, register
from ledger.services.reconcile import ledger_reconcile


def reconcile_ledger(context: JobContext) -> dict:
    """Read-only, so a dry run is the same check."""
    report = ledger_reconcile()
    for check in report["checks"]:
        if check["ok"]:
            context.log.info("Check %s: ok", check["check"])
        else:
            context.log.error(
                "Check %s: %s difference(s), e.g. %s",
                check["check"],
                check["differences"],
                check["sample"][:3],
            )
    if not report["clean"]:
        failed = [check["check"] for check in report["checks"] if not check["ok"]]
        context.mark_partial(f"ledger differences found: {', '.join(failed)}")
    return report


def register_books_jobs() -> None:
    register(
        JobSpec(
            name="reconcile_ledger",
            body=reconcile_ledger,
            cron="30 3 * * *",
            description="Prove debits = credits per asset, cached balances = transfer replay, "
            "no negative balance, each escrow booked once, no pool paid twice; alert on any "
            "difference.",
        )
    )
