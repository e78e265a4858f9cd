"""Releasing escrows whose hold has ended."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Collection
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from jobs.sweeps import PkRange, ProgressCallback, sweep_in_batches, within
from ledger.models import Asset, Channel, DonationCycle, Escrow, TransferKind, TransferSubject
from ledger.services.notifications import NotificationDraft, notifications_queue
from ledger.services.transfers import (
    COIN_ISSUANCE,
    TransferLine,
    transfers_book,
    wallet_account,
)
from ledger.statuses import (
    CYCLE_TRANSITIONS,
    ESCROW_TRANSITIONS,
    CycleStatus,
    EscrowStatus,
    NotificationStatus,
)

logger = logging.getLogger("steward.ledger")

SAMPLE_SIZE = 10
MAX_FAILED = 100
# A run logs its first released escrows one a line (the seed's two lines each), then how many
# more it released.
LOGGED_ESCROWS = 20

Log = logging.Logger | logging.LoggerAdapter


def escrows_due(
    *,
    as_of: datetime,
    pk_range: PkRange | None = None,
    escrow_ids: Collection[int] | None = None,
):
    """Escrows holding with `hold_until <= as_of`; only those of `escrow_ids` when given."""
    due = within(
        Escrow.objects.filter(status=EscrowStatus.HOLDING, hold_until__lte=as_of), pk_range
    )
    return due if escrow_ids is None else due.filter(pk__any=list(escrow_ids))


def escrows_release_preview(
    *,
    as_of: datetime,
    pk_range: PkRange | None = None,
    escrow_ids: Collection[int] | None = None,
) -> dict:
    """What a release as of `as_of` would change, without writing anything."""
    due = escrows_due(as_of=as_of, pk_range=pk_range, escrow_ids=escrow_ids)
    totals = due.aggregate(count=Count("pk"), amount=Sum("amount"))
    count = totals["count"]
    cycles = DonationCycle.objects.filter(
        donation__escrow__in=due, status=CycleStatus.PENDING
    ).count()
    preview = {
        "escrows_released": count,
        "amount_released": totals["amount"] or 0,
        "coins_awarded": count * settings.DONOR_RELEASE_COINS,
        "cycles_obligated": cycles,
        "notifications_queued": count * 2,
        "sample_ids": list(due.order_by("pk").values_list("pk", flat=True)[:SAMPLE_SIZE]),
    }
    if escrow_ids is not None:
        releasable = set(due.values_list("pk", flat=True))
        preview.update(_targets_report(as_of=as_of, escrow_ids=escrow_ids, handled=releasable))
    return preview


def _targets_report(
    *, as_of: datetime, escrow_ids: Collection[int], handled: Collection[int]
) -> dict:
    """What a targeted release did with its targets: how many there were, and why each one
    it left alone was left. `handled`: the targets it released (or, previewing, would
    release) and those that failed, which are reported as failed instead."""
    left = sorted(set(escrow_ids) - set(handled))
    found = {
        pk: (status, hold_until, run_id)
        for pk, status, hold_until, run_id in Escrow.objects.filter(pk__any=left).values_list(
            "pk", "status", "hold_until", "released_by_run_id"
        )
    }
    not_released = []
    for pk in left:
        if pk not in found:
            reason = "no such escrow"
        else:
            status, hold_until, run_id = found[pk]
            if status != EscrowStatus.HOLDING:
                reason = f"not holding: {status}" + (f" by run #{run_id}" if run_id else "")
            elif hold_until > as_of:
                reason = f"not due: holding until {hold_until.isoformat()}"
            else:
                # Due and holding, yet not released: another run holds it right now.
                reason = "being released by another run"
        not_released.append({"escrow_id": pk, "reason": reason})
    return {
        "escrows_targeted": len(escrow_ids),
        "escrows_not_released": len(not_released),
        "not_released_escrows": not_released,
    }


def escrows_release_due(
    *,
    as_of: datetime,
    job_run=None,
    batch_size: int = 1_000,
    on_progress: ProgressCallback | None = None,
    pk_range: PkRange | None = None,
    escrow_ids: Collection[int] | None = None,
    log: Log = logger,
) -> dict:
    """Release every escrow holding with `hold_until <= as_of`, batch by batch; only those
    of `escrow_ids` when given (a targeted release), whose summary then also says why each
    target it did not release was left (`escrows_not_released`, `not_released_escrows`).

    Each batch claims its rows with SKIP LOCKED in primary-key order, so concurrent sweeps
    share the work instead of repeating it, and writes the status change, the transfers, the
    cycle obligations and the outbox rows in one transaction.

    A batch that a row's data makes fail (a constraint the row violates) is released again
    row by row: the good rows go through, the failing ones are left holding and reported as
    `escrows_failed` / `failed_escrows`. Other errors (a lost connection) fail the sweep, so
    the run is retried.

    `log` (the run's own logger, from its job) gets the first LOGGED_ESCROWS released
    escrows, two lines each, and then how many more were released.
    """
    sample: list[int] = []
    logged = 0
    # Every released id of a targeted release (at most the targets), to report the others.
    released_targets: list[int] = []
    failed: dict[int, str] = {}
    scope = {"as_of": as_of, "job_run": job_run, "pk_range": pk_range, "escrow_ids": escrow_ids}

    def apply_batch() -> Counter | None:
        nonlocal logged
        try:
            # A savepoint, so a failing row leaves the batch's transaction usable.
            with transaction.atomic():
                released = _release_batch(batch_size=batch_size, skip=failed, **scope)
        except (IntegrityError, DataError):
            released = _release_rows_singly(batch_size=batch_size, failed=failed, log=log, **scope)
        if released is None:
            return None
        counts, references = released
        ids = list(references)
        for pk in ids[: LOGGED_ESCROWS - logged]:
            log.info("Releasing escrow %s for transaction %s", pk, references[pk])
            log.info("Escrow %s released successfully", pk)
        logged = min(LOGGED_ESCROWS, logged + len(ids))
        sample.extend(ids[: SAMPLE_SIZE - len(sample)])
        if escrow_ids is not None:
            released_targets.extend(ids)
        return counts

    totals = sweep_in_batches(
        apply_batch=apply_batch, on_progress=on_progress, progress_key="escrows_released"
    )
    if (more := totals["escrows_released"] - logged) > 0:
        log.info("... and %s more escrows released", f"{more:,}")
    summary = {
        "escrows_released": totals["escrows_released"],
        "amount_released": totals["amount_released"],
        "coins_awarded": totals["coins_awarded"],
        "cycles_obligated": totals["cycles_obligated"],
        "notifications_queued": totals["notifications_queued"],
        "batches": totals["batches"],
        "sample_ids": sample,
    }
    if failed:
        summary["escrows_failed"] = len(failed)
        summary["failed_escrows"] = [
            {"escrow_id": pk, "error": error} for pk, error in sorted(failed.items())[:MAX_FAILED]
        ]
    if escrow_ids is not None:
        handled = {*released_targets, *failed}
        summary.update(_targets_report(as_of=as_of, escrow_ids=escrow_ids, handled=handled))
    return summary


def _release_rows_singly(
    *,
    as_of: datetime,
    job_run,
    batch_size: int,
    pk_range: PkRange | None,
    escrow_ids: Collection[int] | None,
    failed: dict[int, str],
    log: Log,
) -> tuple[Counter, dict[int, str]] | None:
    """Release the rows of a failed batch one savepoint each, recording the rows that fail."""
    ids = list(
        escrows_due(as_of=as_of, pk_range=pk_range, escrow_ids=escrow_ids)
        .exclude(pk__in=failed)
        .order_by("pk")
        .values_list("pk", flat=True)[:batch_size]
    )
    if not ids:
        return None
    # Keyed even when zero: an all-failing batch must not read as "nothing left to claim".
    counts = Counter(escrows_failed=0)
    references: dict[int, str] = {}
    for pk in ids:
        try:
            with transaction.atomic():
                released = _release_batch(
                    as_of=as_of,
                    job_run=job_run,
                    batch_size=1,
                    pk_range=(pk, pk + 1),
                    escrow_ids=None,
                )
        except (IntegrityError, DataError) as exc:
            failed[pk] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            counts["escrows_failed"] += 1
            log.error("Escrow %s could not be released: %s", pk, failed[pk])
            continue
        if released is not None:
            counts.update(released[0])
            references.update(released[1])
    return counts, references


# On PostgreSQL one statement writes a whole batch but its transfers: it claims the batch (SKIP
# LOCKED, primary-key order), flips it, obligates its cycles and queues its outbox rows, built
# by the server from the claimed rows, and returns what the bookings need. One pass over the
# rows and no outbox rows to encode and decode, instead of four statements. The outbox rows
# are what `notifications_queue` writes (ON CONFLICT DO NOTHING: a dedupe key present is left),
# donor then recipient for each escrow in primary-key order.
_RELEASE_BATCH_POSTGRES = """
WITH claimed AS (
    SELECT escrow.ctid AS row_id, escrow.id, escrow.donor_id, escrow.recipient_id,
           escrow.amount, escrow.donation_id, donor.user_id AS donor_user,
           recipient.user_id AS recipient_user, donation.reference
    FROM ledger_escrow AS escrow
    JOIN ledger_wallet AS donor ON donor.id = escrow.donor_id
    JOIN ledger_wallet AS recipient ON recipient.id = escrow.recipient_id
    JOIN ledger_donation AS donation ON donation.id = escrow.donation_id
    WHERE escrow.status = %(holding)s AND escrow.hold_until <= %(as_of)s
      AND NOT (escrow.id = ANY(%(skip)s)) {scope}
    ORDER BY escrow.id LIMIT %(limit)s
    FOR UPDATE OF escrow SKIP LOCKED
), released AS (
    -- By the locked rows' ctids, which cannot move while this transaction holds the rows:
    -- direct fetches instead of a second primary-key lookup per row.
    UPDATE ledger_escrow
    SET status = %(released)s, released_at = %(now)s, released_by_run_id = %(run)s
    WHERE ctid = ANY(ARRAY(SELECT row_id FROM claimed)) AND status = %(holding)s
    RETURNING id
), batch AS (
    SELECT claimed.* FROM claimed JOIN released USING (id)
), obligated AS (
    UPDATE ledger_donationcycle
    SET status = %(obligated)s, obligated_at = %(now)s, due_at = %(due_at)s
    WHERE donation_id = ANY(ARRAY(SELECT donation_id FROM batch)) AND status = %(pending)s
    RETURNING 1
), queued AS (
    INSERT INTO ledger_notification
        (user_id, channel, kind, payload, dedupe_key, status, attempts, last_error, created_at)
    SELECT CASE WHEN side.donor THEN batch.donor_user ELSE batch.recipient_user END,
           %(channel)s,
           CASE WHEN side.donor THEN %(donor_kind)s ELSE %(recipient_kind)s END,
           jsonb_build_object('escrow_id', batch.id, 'transaction', batch.reference,
                              'amount', batch.amount)
               || CASE WHEN side.donor THEN jsonb_build_object('coins', %(coins)s::bigint)
                       ELSE '{{}}'::jsonb END,
           CASE WHEN side.donor THEN %(donor_key)s ELSE %(recipient_key)s END || batch.id,
           %(queued)s, 0, '', %(now)s
    FROM batch CROSS JOIN (VALUES (true), (false)) AS side(donor)
    ORDER BY batch.id, side.donor DESC
    ON CONFLICT DO NOTHING
)
SELECT batch.id, batch.donor_id, batch.recipient_id, batch.amount, batch.reference,
       (SELECT COUNT(*) FROM obligated)
FROM batch ORDER BY batch.id
"""

DONOR_NOTIFICATION = "escrow_released_donor"
RECIPIENT_NOTIFICATION = "escrow_released_recipient"


@dataclasses.dataclass(frozen=True)
class BatchClaim:
    """Which due escrows one batch claims, and for which run, at which time."""

    as_of: datetime
    job_run: object
    batch_size: int
    pk_range: PkRange | None
    escrow_ids: Collection[int] | None
    skip: Collection[int]
    now: datetime


def _release_claimed_postgres(claim: BatchClaim) -> tuple[list[tuple], int]:
    """Claim, release, obligate and notify up to `claim.batch_size` due escrows in one statement:
    their rows as (pk, donor_id, recipient_id, amount, reference), and the cycles obligated."""
    ESCROW_TRANSITIONS.check(source={EscrowStatus.HOLDING}, target=EscrowStatus.RELEASED)
    CYCLE_TRANSITIONS.check(source={CycleStatus.PENDING}, target=CycleStatus.OBLIGATED)
    params = {
        "holding": EscrowStatus.HOLDING.value,
        "released": EscrowStatus.RELEASED.value,
        "pending": CycleStatus.PENDING.value,
        "obligated": CycleStatus.OBLIGATED.value,
        "queued": NotificationStatus.PENDING.value,
        "as_of": claim.as_of,
        "due_at": claim.as_of + timedelta(days=settings.CYCLE_DUE_DAYS),
        "skip": sorted(claim.skip),
        "limit": claim.batch_size,
        "now": claim.now,
        "run": claim.job_run.pk if claim.job_run is not None else None,
        "channel": Channel.PUSH.value,
        "donor_kind": DONOR_NOTIFICATION,
        "recipient_kind": RECIPIENT_NOTIFICATION,
        "donor_key": "escrow-released-donor:",
        "recipient_key": "escrow-released-recipient:",
        "coins": settings.DONOR_RELEASE_COINS,
    }
    scope = ""
    if claim.pk_range is not None:
        params["start"], params["end"] = claim.pk_range
        scope = "AND escrow.id >= %(start)s" + (
            " AND escrow.id < %(end)s" if claim.pk_range[1] is not None else ""
        )
    if claim.escrow_ids is not None:
        params["targets"] = sorted(claim.escrow_ids)
        scope += " AND escrow.id = ANY(%(targets)s)"
    with connection.cursor() as cursor:
        cursor.execute(_RELEASE_BATCH_POSTGRES.format(scope=scope), params)
        rows = cursor.fetchall()
    cycles = rows[0][5] if rows else 0
    return [row[:5] for row in rows], cycles


def _release_claimed_orm(claim: BatchClaim) -> tuple[list[tuple], int]:
    """What `_release_claimed_postgres` does, statement by statement through the ORM."""
    claimed = list(
        escrows_due(as_of=claim.as_of, pk_range=claim.pk_range, escrow_ids=claim.escrow_ids)
        .exclude(pk__in=claim.skip)
        .select_for_update(skip_locked=True, of=("self",))
        .order_by("pk")
        .values_list(
            "pk",
            "donor_id",
            "recipient_id",
            "amount",
            "donation__reference",
            "donation_id",
            "donor__user_id",
            "recipient__user_id",
        )[: claim.batch_size]
    )
    if not claimed:
        return [], 0
    ids = [row[0] for row in claimed]
    updated = ESCROW_TRANSITIONS.update(
        Escrow.objects.filter(hold_until__lte=claim.as_of, pk__in=ids),
        source={EscrowStatus.HOLDING},
        target=EscrowStatus.RELEASED,
        released_at=claim.now,
        released_by_run=claim.job_run,
    )
    if updated != len(ids):
        raise RuntimeError(f"claimed {len(ids)} escrows but released {updated}")
    cycles = CYCLE_TRANSITIONS.update(
        DonationCycle.objects.filter(donation_id__any=[row[5] for row in claimed]),
        source={CycleStatus.PENDING},
        target=CycleStatus.OBLIGATED,
        obligated_at=claim.now,
        due_at=claim.as_of + timedelta(days=settings.CYCLE_DUE_DAYS),
    )
    coins = settings.DONOR_RELEASE_COINS
    drafts: list[NotificationDraft] = []
    for pk, _donor, _recipient, amount, ref, _donation, donor_user, recipient_user in claimed:
        payload = {"escrow_id": pk, "transaction": ref, "amount": amount}
        drafts.append(
            NotificationDraft(
                donor_user,
                Channel.PUSH,
                DONOR_NOTIFICATION,
                f"escrow-released-donor:{pk}",
                {**payload, "coins": coins},
            )
        )
        drafts.append(
            NotificationDraft(
                recipient_user,
                Channel.PUSH,
                RECIPIENT_NOTIFICATION,
                f"escrow-released-recipient:{pk}",
                payload,
            )
        )
    notifications_queue(drafts=drafts)
    return [row[:5] for row in claimed], cycles


def _release_batch(
    *,
    as_of: datetime,
    job_run,
    batch_size: int,
    pk_range: PkRange | None,
    escrow_ids: Collection[int] | None,
    skip: Collection[int] = (),
) -> tuple[Counter, dict[int, str]] | None:
    """Release one claimed batch: its counts and each released escrow's transaction
    reference, in primary-key order."""
    release_claimed = (
        _release_claimed_postgres if connection.vendor == "postgresql" else _release_claimed_orm
    )
    claimed, cycles = release_claimed(
        BatchClaim(
            as_of=as_of,
            job_run=job_run,
            batch_size=batch_size,
            pk_range=pk_range,
            escrow_ids=escrow_ids,
            skip=skip,
            now=timezone.now(),
        )
    )
    if not claimed:
        return None
    coins = settings.DONOR_RELEASE_COINS
    lines: list[TransferLine] = []
    for pk, donor_id, recipient_id, amount, _reference in claimed:
        lines.append(
            TransferLine(
                reference=f"escrow-release:{pk}",
                kind=TransferKind.ESCROW_RELEASE,
                asset=Asset.MONEY,
                amount=amount,
                debit_account=wallet_account(recipient_id, "receivable"),
                credit_account=wallet_account(recipient_id, "spendable"),
                subject_type=TransferSubject.ESCROW,
                subject_id=pk,
            )
        )
        if coins:
            lines.append(
                TransferLine(
                    reference=f"escrow-coins:{pk}",
                    kind=TransferKind.COIN_AWARD,
                    asset=Asset.COINS,
                    amount=coins,
                    debit_account=COIN_ISSUANCE,
                    credit_account=wallet_account(donor_id, "coins"),
                    subject_type=TransferSubject.ESCROW,
                    subject_id=pk,
                )
            )
    # Last: it locks the wallets and the coin-issuance account that every concurrent batch
    # shares, which are then held only until this batch commits.
    transfers_book(lines=lines, job_run=job_run)
    counts = Counter(
        escrows_released=len(claimed),
        amount_released=sum(row[3] for row in claimed),
        coins_awarded=coins * len(claimed),
        cycles_obligated=cycles,
        # Two outbox rows per escrow, as `notifications_queue` counts them.
        notifications_queued=2 * len(claimed),
    )
    return counts, {row[0]: row[4] for row in claimed}
