"""Reconciliation: proving the cached balances and the money events against the transfers.

Every check is one set-based query; differences are returned (capped) with their totals. The
bookings of a donation, an escrow, a pool or a milestone are counted by the object their
subject columns name, whatever their reference says: a second release booked under another
reference, with the balances moved to match, is still a second release.
"""

from __future__ import annotations

from ledger.services.reconcile.balances import balance_checks
from ledger.services.reconcile.bookings import booking_checks
from ledger.services.reconcile.queries import rows

_TRANSFER_TOTALS_SQL = "SELECT asset, COUNT(*), SUM(amount) FROM ledger_transfer GROUP BY asset"


def ledger_reconcile() -> dict:
    """Run every reconciliation check and return their outcomes and the totals checked."""
    checks = [*balance_checks(), *booking_checks()]
    transfer_totals = {
        asset: {"transfers": count, "amount": int(amount or 0)}
        for asset, count, amount in rows(_TRANSFER_TOTALS_SQL)
    }
    return {
        "clean": all(check["ok"] for check in checks),
        "checks": checks,
        "transfer_totals": transfer_totals,
    }
