"""Prize pools: opening, entry fees, and finalizing the pools whose period has ended.

A pool's money sits in the ledger account `pool:<id>`: entry fees move from the player's
spendable balance into it, and the prize moves from it to the winner's spendable balance
under the reference `prize-payout:<pool id>`, whose deterministic transfer id means a pool
can never pay twice. A pool without a winner keeps its money in its account.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

from jobs.exceptions import ConflictError
from leaderboard.lock_objects import pool_lock
from leaderboard.models import POOL_TRANSITIONS, Game, PoolPeriod, PoolStatus, PrizePool
from leaderboard.periods import latest_ended_start, period_bounds
from leaderboard.selectors import pool_winning_score
from ledger.models import Asset, SystemAccount, TransferKind, TransferSubject, Wallet
from ledger.services.transfers import TransferLine, transfers_book, wallet_account

logger = logging.getLogger("steward.leaderboard")


class PoolError(ConflictError):
    """A pool operation that the pool's state does not allow."""


def pool_account(pool_id: int) -> str:
    return f"pool:{pool_id}"


def prize_payout_reference(pool_id: int) -> str:
    return f"prize-payout:{pool_id}"


@transaction.atomic
def prize_pool_open(*, game: str, period: str, period_start: date) -> PrizePool:
    """The pool of a game for one day or ISO week, created on first use."""
    if period == PoolPeriod.WEEKLY and period_start.weekday() != 0:
        raise PoolError(f"a weekly pool starts on a Monday, not on {period_start:%A %Y-%m-%d}")
    pool, _created = PrizePool.objects.get_or_create(
        game=Game(game), period=PoolPeriod(period), period_start=period_start
    )
    return pool


@transaction.atomic
def prize_pool_enter(
    *, pool: PrizePool, wallet: Wallet, fee: int, reference: str, at: datetime | None = None
) -> None:
    """Pay an entry fee into an open pool whose period has not ended; `reference` names the
    entry (e.g. the game session), so the same entry is never charged twice."""
    at = at or timezone.now()
    locked = pool_lock(pool.pk)
    _start, end = period_bounds(locked.period, locked.period_start)
    if locked.status != PoolStatus.OPEN or at >= end:
        raise PoolError(f"pool #{pool.pk} no longer takes entries")
    transfers_book(
        lines=[
            TransferLine(
                reference=f"pool-entry:{pool.pk}:{reference}",
                kind=TransferKind.POOL_ENTRY_FEE,
                asset=Asset.MONEY,
                amount=fee,
                debit_account=wallet_account(wallet.pk, "spendable"),
                credit_account=pool_account(pool.pk),
                subject_type=TransferSubject.POOL,
                subject_id=pool.pk,
            )
        ]
    )
    PrizePool.objects.filter(pk=pool.pk).update(amount=F("amount") + fee)


def prize_pools_due(*, as_of: datetime, game: str | None = None, period: str | None = None):
    """Open pools whose period ended by `as_of`: yesterday's and older daily pools, and the
    weekly pools of every ISO week that has ended; only those of `game` and of `period` when
    given."""
    due = PrizePool.objects.filter(status=PoolStatus.OPEN).filter(
        Q(period=PoolPeriod.DAILY, period_start__lte=latest_ended_start(PoolPeriod.DAILY, as_of))
        | Q(
            period=PoolPeriod.WEEKLY,
            period_start__lte=latest_ended_start(PoolPeriod.WEEKLY, as_of),
        )
    )
    if game is not None:
        due = due.filter(game=Game(game))
    if period is not None:
        due = due.filter(period=PoolPeriod(period))
    return due


def _outcome(pool: PrizePool) -> dict:
    """The pool's winner and prize, checked for what would make the payout fail."""
    base = {
        "pool": pool.pk,
        "period": pool.period,
        "period_start": pool.period_start.isoformat(),
    }
    score = pool_winning_score(pool=pool)
    if score is None:
        return {**base, "outcome": PoolStatus.NO_WINNER.value, "note": "no games played"}
    wallet_id = Wallet.objects.filter(user_id=score.player_id).values_list("pk", flat=True).first()
    if wallet_id is None:
        raise PoolError(f"winner user #{score.player_id} has no wallet to pay")
    if pool.amount:
        held = (
            SystemAccount.objects.filter(code=pool_account(pool.pk))
            .values_list("balance", flat=True)
            .first()
        ) or 0
        if held < pool.amount:
            raise PoolError(
                f"account {pool_account(pool.pk)} holds {held}, less than the prize {pool.amount}"
            )
    return {
        **base,
        "outcome": PoolStatus.FINALIZED.value,
        "winner_id": score.player_id,
        "winning_score": score.points,
        "winning_score_pk": score.pk,
        "wallet_id": wallet_id,
        "prize": pool.amount,
    }


def prize_pool_finalize_preview(*, pool: PrizePool) -> dict:
    return _outcome(pool)


@transaction.atomic
def prize_pool_finalize(*, pool_id: int, as_of: datetime, job_run=None) -> dict | None:
    """Finalize one ended open pool: the winner is the top score of its game in its period
    (the earliest on a tie) and is paid the pool; no score means `no_winner`.

    Returns None when the pool was not open and ended any more (finalized meanwhile).
    """
    pool = pool_lock(pool_id)
    if not prize_pools_due(as_of=as_of).filter(pk=pool.pk).exists():
        return None
    outcome = _outcome(pool)
    now = timezone.now()
    if outcome["outcome"] == PoolStatus.NO_WINNER:
        target = PoolStatus.NO_WINNER
        changes = {}
    else:
        target = PoolStatus.FINALIZED
        changes = {
            "winner_id": outcome["winner_id"],
            "winning_score": outcome["winning_score"],
            "winning_score_pk": outcome["winning_score_pk"],
        }
    updated = POOL_TRANSITIONS.update(
        PrizePool.objects.filter(pk=pool.pk),
        source={PoolStatus.OPEN},
        target=target,
        finalized_at=now,
        finalized_by_run=job_run,
        **changes,
    )
    if updated != 1:
        raise RuntimeError(f"pool #{pool.pk} changed while locked")
    if outcome["outcome"] == PoolStatus.FINALIZED and pool.amount:
        transfers_book(
            lines=[
                TransferLine(
                    reference=prize_payout_reference(pool.pk),
                    kind=TransferKind.PRIZE_PAYOUT,
                    asset=Asset.MONEY,
                    amount=pool.amount,
                    debit_account=pool_account(pool.pk),
                    credit_account=wallet_account(outcome["wallet_id"], "spendable"),
                    subject_type=TransferSubject.POOL,
                    subject_id=pool.pk,
                )
            ],
            job_run=job_run,
        )
    return outcome


def _empty_game() -> dict:
    return {"finalized": 0, "no_winner": 0, "failed": 0, "prize_paid": 0, "pools": []}


def prize_pools_finalize_due(
    *,
    as_of: datetime,
    job_run=None,
    dry_run: bool = False,
    game: str | None = None,
    period: str | None = None,
) -> dict:
    """Finalize every ended open pool, oldest first, each in its own transaction; only the
    pools of `game` and of `period` when given (the summary then says which).

    A pool that fails is recorded under its game with the error and left open for the next
    run; the other pools and games go on. The summary lists every game's outcome (just the
    targeted game's, for one game). A failing database (a lost connection, a deadlock) fails
    the whole run instead, to be retried.

    Runs at once (a sweep and a targeted run) may reach the same pool: each pool is finalized
    under its row lock after checking again that it is still open, so the second one finds
    it done and passes it by.
    """
    due = list(
        prize_pools_due(as_of=as_of, game=game, period=period)
        .order_by("period_start", "period", "pk")
        .values_list("pk", "game", "period", "period_start")
    )
    games = {name: _empty_game() for name in ([game] if game else Game.values)}
    targeted = {
        f"targeted_{name}": value
        for name, value in (("game", game), ("period", period))
        if value is not None
    }
    for pool_id, pool_game, pool_period, start in due:
        summary = games[pool_game]
        try:
            if dry_run:
                outcome = prize_pool_finalize_preview(pool=PrizePool.objects.get(pk=pool_id))
            else:
                outcome = prize_pool_finalize(pool_id=pool_id, as_of=as_of, job_run=job_run)
        except (OperationalError, InterfaceError):
            raise  # the database itself is failing: the whole run fails and is retried
        except Exception as exc:
            logger.exception(
                "Finalizing %s %s pool #%s of %s failed", pool_game, pool_period, pool_id, start
            )
            summary["failed"] += 1
            summary["pools"].append(
                {
                    "pool": pool_id,
                    "period": pool_period,
                    "period_start": start.isoformat(),
                    "outcome": "failed",
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
            continue
        if outcome is None:
            continue
        outcome.pop("wallet_id", None)
        outcome.pop("winning_score_pk", None)
        summary[outcome["outcome"]] += 1
        summary["prize_paid"] += outcome.get("prize", 0)
        summary["pools"].append(outcome)
    return {
        **targeted,
        "pools_due": len(due),
        "pools_finalized": sum(g["finalized"] for g in games.values()),
        "pools_no_winner": sum(g["no_winner"] for g in games.values()),
        "pools_failed": sum(g["failed"] for g in games.values()),
        "prize_paid": sum(g["prize_paid"] for g in games.values()),
        "failed_games": [name for name, g in games.items() if g["failed"]],
        "games": games,
    }
