"""Users' milestones: the 1st, 5th, 10th, 25th and 50th fulfilled cycle and 500, 1,000 and
5,000 Charity Coins held, each recorded once, announced once and its bonus booked once."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection

from django.conf import settings
from django.db import connection
from django.utils import timezone

from jobs.sweeps import ProgressCallback, sweep_in_batches
from ledger.models import Asset, Channel, MilestoneKind, TransferKind, TransferSubject, Wallet
from ledger.services.notifications import NotificationDraft, notifications_queue
from ledger.services.transfers import (
    COIN_ISSUANCE,
    TransferLine,
    transfers_book,
    wallet_account,
)
from ledger.statuses import CycleStatus

logger = logging.getLogger("steward.ledger")

MILESTONES: dict[str, tuple[int, ...]] = {
    MilestoneKind.CYCLES_FULFILLED: (1, 5, 10, 25, 50),
    MilestoneKind.COINS_HELD: (500, 1_000, 5_000),
}
# A large run logs its first milestones one a line, then how many more it reached.
LOGGED_MILESTONES = 20

# Every milestone a batch of wallets has reached and not yet recorded, with what the user
# has. One statement for PostgreSQL and SQLite: a CTE of the goals, the fulfilled cycles
# counted per wallet of the batch's primary-key range.
_REACHED = """
WITH goal(kind, threshold) AS (VALUES {goals}),
fulfilled AS (
    SELECT cycle.wallet_id, COUNT(*) AS n
    FROM ledger_donationcycle AS cycle
    WHERE cycle.status = %(fulfilled)s
      AND cycle.wallet_id >= %(first)s AND cycle.wallet_id <= %(last)s
    GROUP BY cycle.wallet_id
),
reached AS (
    SELECT wallet.user_id, goal.kind, goal.threshold,
           CASE goal.kind WHEN %(cycles)s THEN COALESCE(fulfilled.n, 0)
                ELSE wallet.charity_coins END AS value
    FROM ledger_wallet AS wallet
    CROSS JOIN goal
    LEFT JOIN fulfilled ON fulfilled.wallet_id = wallet.id
    WHERE wallet.id >= %(first)s AND wallet.id <= %(last)s {of_users}
)
SELECT reached.user_id, reached.kind, reached.threshold, reached.value
FROM reached
WHERE reached.value >= reached.threshold
  AND NOT EXISTS (
    SELECT 1 FROM ledger_milestone AS milestone
    WHERE milestone.user_id = reached.user_id AND milestone.kind = reached.kind
      AND milestone.threshold = reached.threshold
  )
"""

# The insert keeps only the rows no other run has inserted (a concurrent run's rows wait for
# its commit, then conflict), and returns just those: the ones to announce and reward. Rows
# go in one fixed order, so two runs never wait on each other's rows crosswise. The
# `WHERE 1 = 1` is SQLite's: an INSERT ... SELECT needs a WHERE before its ON CONFLICT there.
_RECORD = """
INSERT INTO ledger_milestone (user_id, kind, threshold, value, reached_at, bonus_coins, job_run_id)
SELECT candidate.user_id, candidate.kind, candidate.threshold, candidate.value,
       %(now)s, %(bonus)s, %(run)s
FROM ({reached}) AS candidate
WHERE 1 = 1
ORDER BY candidate.user_id, candidate.kind, candidate.threshold
ON CONFLICT (user_id, kind, threshold) DO NOTHING
RETURNING id, user_id, kind, threshold, value
"""


def milestone_text(kind: str, threshold: int) -> str:
    """A milestone as a person reads it: "5 fulfilled cycles", "1,000 Charity Coins held"."""
    if kind == MilestoneKind.CYCLES_FULFILLED:
        return f"{threshold:,} fulfilled cycle" + ("" if threshold == 1 else "s")
    return f"{threshold:,} Charity Coins held"


def _reached_sql(*, first: int, last: int, user_ids: Collection[int] | None) -> tuple[str, dict]:
    params: dict = {
        "fulfilled": CycleStatus.FULFILLED.value,
        "cycles": MilestoneKind.CYCLES_FULFILLED.value,
        "first": first,
        "last": last,
    }
    goals = []
    for kind, thresholds in MILESTONES.items():
        for threshold in thresholds:
            key = f"goal_{len(goals)}"
            params[f"{key}_kind"], params[f"{key}_threshold"] = kind.value, threshold
            # Typed, so the VALUES' columns compare with the tables' on either database.
            goals.append(
                f"(CAST(%({key}_kind)s AS VARCHAR(32)), CAST(%({key}_threshold)s AS BIGINT))"
            )
    of_users = ""
    if user_ids is not None:
        names = []
        for index, user_id in enumerate(sorted(user_ids)):
            params[f"user_{index}"] = user_id
            names.append(f"%(user_{index})s")
        of_users = f"AND wallet.user_id IN ({', '.join(names)})"
    return _REACHED.format(goals=", ".join(goals), of_users=of_users), params


def _wallet_pages(*, batch_size: int, user_ids: Collection[int] | None):
    """A function returning the next page of (wallet id, user id), primary-key order."""
    after = 0

    def next_page() -> list[tuple[int, int]]:
        nonlocal after
        wallets = Wallet.objects.filter(pk__gt=after)
        if user_ids is not None:
            wallets = wallets.filter(user_id__any=list(user_ids))
        page = list(wallets.order_by("pk").values_list("pk", "user_id")[:batch_size])
        if page:
            after = page[-1][0]
        return page

    return next_page


def _targets(user_ids: Collection[int] | None) -> dict:
    return {} if user_ids is None else {"users_targeted": len(user_ids)}


def milestones_check_preview(
    *, batch_size: int = 1_000, user_ids: Collection[int] | None = None
) -> dict:
    """The milestones a check would record now, per kind and threshold, writing nothing."""
    next_page = _wallet_pages(batch_size=batch_size, user_ids=user_ids)
    checked = 0
    reached: Counter = Counter()
    while page := next_page():
        checked += len(page)
        sql, params = _reached_sql(first=page[0][0], last=page[-1][0], user_ids=user_ids)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            reached.update(f"{kind}:{threshold}" for _user, kind, threshold, _value in cursor)
    total = sum(reached.values())
    bonus = settings.MILESTONE_BONUS_COINS
    return {
        "users_checked": checked,
        "milestones_reached": total,
        "milestones_by_kind": _by_kind(reached),
        "notifications_queued": total,
        "bonus_coins_booked": total * bonus,
        **_targets(user_ids),
    }


def milestones_check(
    *,
    job_run=None,
    batch_size: int = 1_000,
    on_progress: ProgressCallback | None = None,
    user_ids: Collection[int] | None = None,
    log: logging.Logger | logging.LoggerAdapter = logger,
) -> dict:
    """Record every milestone the users (only those of `user_ids` when given) have reached
    and not yet recorded, batch by batch of wallets: per milestone one Milestone row, a push
    notification and, when MILESTONE_BONUS_COINS is set, a coin bonus, in one transaction.

    A milestone is recorded once whatever the number of concurrent checks: the unique
    (user, kind, threshold) row decides which run announces and rewards it. `log` gets the
    first LOGGED_MILESTONES milestones one a line (the run's own logger, from its job).
    """
    next_page = _wallet_pages(batch_size=batch_size, user_ids=user_ids)
    bonus = settings.MILESTONE_BONUS_COINS
    reached: Counter = Counter()
    logged = 0

    def apply_batch() -> Counter | None:
        nonlocal logged
        page = next_page()
        if not page:
            return None
        wallet_of_user = {user_id: wallet_id for wallet_id, user_id in page}
        reached_sql, params = _reached_sql(first=page[0][0], last=page[-1][0], user_ids=user_ids)
        params.update(
            now=timezone.now(), bonus=bonus, run=job_run.pk if job_run is not None else None
        )
        with connection.cursor() as cursor:
            cursor.execute(_RECORD.format(reached=reached_sql), params)
            # RETURNING's order is not the insert's on every database.
            recorded = sorted(cursor.fetchall(), key=lambda row: (row[1], row[2], row[3]))
        drafts = []
        lines = []
        for pk, user_id, kind, threshold, value in recorded:
            reached[f"{kind}:{threshold}"] += 1
            if logged < LOGGED_MILESTONES:
                logged += 1
                log.info(
                    "User %s reached a milestone: %s (has %s)",
                    user_id,
                    milestone_text(kind, threshold),
                    f"{value:,}",
                )
            drafts.append(
                NotificationDraft(
                    user_id,
                    Channel.PUSH,
                    "milestone_reached",
                    f"milestone:{kind}:{threshold}:{user_id}",
                    {
                        "milestone_id": pk,
                        "kind": kind,
                        "threshold": threshold,
                        "value": value,
                        "bonus_coins": bonus,
                    },
                )
            )
            if bonus:
                lines.append(
                    TransferLine(
                        reference=f"milestone-bonus:{pk}",
                        kind=TransferKind.MILESTONE_BONUS,
                        asset=Asset.COINS,
                        amount=bonus,
                        debit_account=COIN_ISSUANCE,
                        credit_account=wallet_account(wallet_of_user[user_id], "coins"),
                        subject_type=TransferSubject.MILESTONE,
                        subject_id=pk,
                    )
                )
        queued = notifications_queue(drafts=drafts)
        # Last: it locks the wallets and the coin-issuance account every batch shares.
        transfers_book(lines=lines, job_run=job_run)
        return Counter(
            users_checked=len(page),
            milestones_reached=len(recorded),
            notifications_queued=queued,
            bonus_coins_booked=bonus * len(lines),
        )

    totals = sweep_in_batches(
        apply_batch=apply_batch, on_progress=on_progress, progress_key="users_checked"
    )
    if (more := totals["milestones_reached"] - logged) > 0:
        log.info("... and %s more milestones reached", f"{more:,}")
    return {
        "users_checked": totals["users_checked"],
        "milestones_reached": totals["milestones_reached"],
        "milestones_by_kind": _by_kind(reached),
        "notifications_queued": totals["notifications_queued"],
        "bonus_coins_booked": totals["bonus_coins_booked"],
        "batches": totals["batches"],
        **_targets(user_ids),
    }


def _by_kind(reached: Counter) -> dict[str, int]:
    """{"cycles_fulfilled:5": 3, ...} in the order of MILESTONES."""
    order = [
        f"{kind}:{threshold}" for kind, thresholds in MILESTONES.items() for threshold in thresholds
    ]
    return {key: reached[key] for key in order if reached[key]}


def milestones_users_to_check(*, user_ids: Collection[int] | None = None) -> int:
    """How many users a check goes through: the total its progress counts towards."""
    wallets = Wallet.objects.all()
    if user_ids is not None:
        wallets = wallets.filter(user_id__any=list(user_ids))
    return wallets.count()


def milestones_of_run_text(reached: dict[str, int]) -> str:
    """{"cycles_fulfilled:5": 3} as "3 × 5 fulfilled cycles"."""
    parts = []
    for key, count in reached.items():
        kind, _, threshold = key.partition(":")
        parts.append(f"{count:,} × {milestone_text(kind, int(threshold))}")
    return ", ".join(parts)
