"""The booking checks: the bookings of a donation, an escrow, a pool or a milestone counted by
the object their subject columns name, whatever their reference says (a second release booked
under another reference, with the balances moved to match, is still a second release), and
every booking of such a kind naming an object that exists."""

from __future__ import annotations

from django.apps import apps

from ledger.models import (
    SUBJECT_OF_KIND,
    Donation,
    Escrow,
    Milestone,
    TransferKind,
    TransferSubject,
)
from ledger.services.reconcile.queries import check, rows
from ledger.statuses import EscrowStatus

# Per business object, its bookings of one kind, counted and summed by the subject columns
# (whatever their reference says); the rows returned are the objects that are wrong.
_DONATION_BOOKINGS_SQL = """
SELECT donation.id, donation.amount, COUNT(transfer.id), COALESCE(SUM(transfer.amount), 0)
FROM ledger_donation AS donation
LEFT JOIN ledger_transfer AS transfer
       ON transfer.subject_type = %(subject)s AND transfer.subject_id = donation.id
      AND transfer.kind = %(kind)s
GROUP BY donation.id, donation.amount
HAVING COUNT(transfer.id) <> 1 OR COALESCE(SUM(transfer.amount), 0) <> donation.amount
ORDER BY donation.id
"""

_ESCROW_BOOKINGS_SQL = """
SELECT escrow.id, escrow.status, escrow.amount,
       COALESCE(SUM(CASE WHEN transfer.kind = %(release)s THEN 1 ELSE 0 END), 0) AS releases,
       COALESCE(SUM(CASE WHEN transfer.kind = %(release)s THEN transfer.amount ELSE 0 END), 0),
       COALESCE(SUM(CASE WHEN transfer.kind = %(award)s THEN 1 ELSE 0 END), 0) AS awards
FROM ledger_escrow AS escrow
LEFT JOIN ledger_transfer AS transfer
       ON transfer.subject_type = %(subject)s AND transfer.subject_id = escrow.id
      AND transfer.kind IN (%(release)s, %(award)s)
GROUP BY escrow.id, escrow.status, escrow.amount
HAVING CASE WHEN escrow.status = %(released)s
            THEN COALESCE(SUM(CASE WHEN transfer.kind = %(release)s THEN 1 ELSE 0 END), 0) <> 1
              OR COALESCE(SUM(CASE WHEN transfer.kind = %(release)s THEN transfer.amount
                                   ELSE 0 END), 0) <> escrow.amount
              OR COALESCE(SUM(CASE WHEN transfer.kind = %(award)s THEN 1 ELSE 0 END), 0) > 1
            ELSE COUNT(transfer.id) <> 0 END
ORDER BY escrow.id
"""

# A pool pays its prize once when finalized with a winner and money in it, and never else.
_POOL_PAYOUTS_SQL = """
SELECT pool.id, pool.status, pool.amount, COUNT(transfer.id), COALESCE(SUM(transfer.amount), 0),
       CASE WHEN pool.status = %(finalized)s AND pool.winner_id IS NOT NULL AND pool.amount > 0
            THEN 1 ELSE 0 END AS owed
FROM {pools} AS pool
LEFT JOIN ledger_transfer AS transfer
       ON transfer.subject_type = %(subject)s AND transfer.subject_id = pool.id
      AND transfer.kind = %(kind)s
GROUP BY pool.id, pool.status, pool.amount, pool.winner_id
HAVING COUNT(transfer.id) <> CASE WHEN pool.status = %(finalized)s
                                   AND pool.winner_id IS NOT NULL AND pool.amount > 0
                                  THEN 1 ELSE 0 END
    OR (COUNT(transfer.id) = 1 AND COALESCE(SUM(transfer.amount), 0) <> pool.amount)
ORDER BY pool.id
"""

_MILESTONE_BONUSES_SQL = """
SELECT milestone.id, milestone.bonus_coins, COUNT(transfer.id),
       COALESCE(SUM(transfer.amount), 0)
FROM ledger_milestone AS milestone
LEFT JOIN ledger_transfer AS transfer
       ON transfer.subject_type = %(subject)s AND transfer.subject_id = milestone.id
      AND transfer.kind = %(kind)s
GROUP BY milestone.id, milestone.bonus_coins
HAVING COUNT(transfer.id) <> CASE WHEN milestone.bonus_coins > 0 THEN 1 ELSE 0 END
    OR COALESCE(SUM(transfer.amount), 0) <> milestone.bonus_coins
ORDER BY milestone.id
"""

# A booking of a kind that belongs to an object, naming no object of that type that exists.
_UNNAMED_BOOKINGS_SQL = """
SELECT transfer.reference, transfer.kind, transfer.subject_type, transfer.subject_id
FROM ledger_transfer AS transfer
{joins}
WHERE transfer.kind IN ({kinds})
  AND (transfer.subject_type <> CASE transfer.kind {expected_types} END
       OR COALESCE({found}) IS NULL)
ORDER BY transfer.reference
"""


def _donation_bookings() -> list[dict]:
    params = {"subject": TransferSubject.DONATION, "kind": TransferKind.DONATION}
    return [
        {
            "account": f"donation {donation_id}",
            "expected": f"1 {TransferKind.DONATION} of {amount}",
            "actual": f"{count} of {int(booked)}",
        }
        for donation_id, amount, count, booked in rows(_DONATION_BOOKINGS_SQL, params)
    ]


def _escrow_bookings() -> list[dict]:
    params = {
        "subject": TransferSubject.ESCROW,
        "release": TransferKind.ESCROW_RELEASE,
        "award": TransferKind.COIN_AWARD,
        "released": EscrowStatus.RELEASED,
    }
    differences = []
    for escrow_id, status, amount, releases, released, awards in rows(_ESCROW_BOOKINGS_SQL, params):
        if status == EscrowStatus.RELEASED:
            expected = f"1 {TransferKind.ESCROW_RELEASE} of {amount}, at most 1 coin_award"
        else:
            expected = f"no {TransferKind.ESCROW_RELEASE}, no {TransferKind.COIN_AWARD}"
        differences.append(
            {
                "account": f"escrow {escrow_id} ({status})",
                "expected": expected,
                "actual": f"{releases} {TransferKind.ESCROW_RELEASE} of {int(released)}, "
                f"{awards} {TransferKind.COIN_AWARD}",
            }
        )
    return differences


def _pool_payouts() -> list[dict]:
    pools = apps.get_model("leaderboard", "PrizePool")._meta.db_table
    params = {
        "subject": TransferSubject.POOL,
        "kind": TransferKind.PRIZE_PAYOUT,
        "finalized": "finalized",
    }
    return [
        {
            "account": f"pool {pool_id} ({status})",
            "expected": f"{owed} {TransferKind.PRIZE_PAYOUT}" + (f" of {amount}" if owed else ""),
            "actual": f"{count} of {int(paid)}",
        }
        for pool_id, status, amount, count, paid, owed in rows(
            _POOL_PAYOUTS_SQL.format(pools=pools), params
        )
    ]


def _milestone_bonuses() -> list[dict]:
    params = {"subject": TransferSubject.MILESTONE, "kind": TransferKind.MILESTONE_BONUS}
    return [
        {
            "account": f"milestone {milestone_id}",
            "expected": f"{1 if bonus else 0} {TransferKind.MILESTONE_BONUS} of {bonus}",
            "actual": f"{count} of {int(paid)}",
        }
        for milestone_id, bonus, count, paid in rows(_MILESTONE_BONUSES_SQL, params)
    ]


def _subject_tables() -> dict[str, str]:
    return {
        TransferSubject.DONATION: Donation._meta.db_table,
        TransferSubject.ESCROW: Escrow._meta.db_table,
        TransferSubject.POOL: apps.get_model("leaderboard", "PrizePool")._meta.db_table,
        TransferSubject.MILESTONE: Milestone._meta.db_table,
    }


def _unnamed_bookings() -> list[dict]:
    # The values interpolated are the code's own choices and table names, never input.
    tables = _subject_tables()
    joins = "\n".join(
        f"LEFT JOIN {table} AS subject_{subject} ON transfer.subject_type = '{subject}' "
        f"AND subject_{subject}.id = transfer.subject_id"
        for subject, table in tables.items()
    )
    sql = _UNNAMED_BOOKINGS_SQL.format(
        joins=joins,
        kinds=", ".join(f"'{kind}'" for kind in SUBJECT_OF_KIND),
        expected_types=" ".join(
            f"WHEN '{kind}' THEN '{subject}'" for kind, subject in SUBJECT_OF_KIND.items()
        ),
        found=", ".join(f"subject_{subject}.id" for subject in tables),
    )
    return [
        {
            "account": reference,
            "expected": f"names its {SUBJECT_OF_KIND[kind]}, which exists",
            "actual": f"{subject_type} {subject_id}" if subject_type else "no object",
        }
        for reference, kind, subject_type, subject_id in rows(sql)
    ]


def booking_checks() -> list[dict]:
    """The booking checks' outcomes, in the order they are reported."""
    return [
        check("donations_booked_once", _donation_bookings()),
        check("escrows_booked_by_their_status", _escrow_bookings()),
        check("pools_paid_once_when_won", _pool_payouts()),
        check("milestones_paid_their_bonus_once", _milestone_bonuses()),
        check("bookings_name_their_object", _unnamed_bookings()),
    ]
