"""Expiring matches that were not accepted in time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from datetime import datetime

from django.db.models import Count, Sum
from django.utils import timezone

from jobs.sweeps import ProgressCallback, sweep_in_batches
from ledger.models import Channel, Match
from ledger.services.notifications import NotificationDraft, notifications_queue
from ledger.statuses import MATCH_TRANSITIONS, MatchStatus

SAMPLE_SIZE = 10


def matches_due(*, as_of: datetime, match_ids: Collection[int] | None = None):
    """Pending matches with `expires_at <= as_of`; only those of `match_ids` when given."""
    due = Match.objects.filter(status=MatchStatus.PENDING, expires_at__lte=as_of)
    return due if match_ids is None else due.filter(pk__any=list(match_ids))


def matches_expire_preview(*, as_of: datetime, match_ids: Collection[int] | None = None) -> dict:
    due = matches_due(as_of=as_of, match_ids=match_ids)
    totals = due.aggregate(count=Count("pk"), amount=Sum("amount"))
    preview = {
        "matches_expired": totals["count"],
        "amount_unmatched": totals["amount"] or 0,
        "notifications_queued": totals["count"],
        "sample_ids": list(due.order_by("pk").values_list("pk", flat=True)[:SAMPLE_SIZE]),
    }
    if match_ids is not None:
        expiring = set(due.values_list("pk", flat=True))
        preview.update(_targets_report(as_of=as_of, match_ids=match_ids, handled=expiring))
    return preview


def _targets_report(
    *, as_of: datetime, match_ids: Collection[int], handled: Collection[int]
) -> dict:
    """How many matches a targeted run had, and why each one it did not expire was left."""
    left = sorted(set(match_ids) - set(handled))
    found = {
        pk: (status, expires_at)
        for pk, status, expires_at in Match.objects.filter(pk__any=left).values_list(
            "pk", "status", "expires_at"
        )
    }
    not_expired = []
    for pk in left:
        if pk not in found:
            reason = "no such match"
        else:
            status, expires_at = found[pk]
            if status != MatchStatus.PENDING:
                reason = f"not pending: {status}"
            elif expires_at > as_of:
                reason = f"not due: expires at {expires_at.isoformat()}"
            else:
                # Due and pending, yet not expired: another run holds it right now.
                reason = "being expired by another run"
        not_expired.append({"match_id": pk, "reason": reason})
    return {
        "matches_targeted": len(match_ids),
        "matches_not_expired": len(not_expired),
        "not_expired_matches": not_expired,
    }


def matches_expire_due(
    *,
    as_of: datetime,
    batch_size: int = 1_000,
    on_progress: ProgressCallback | None = None,
    match_ids: Collection[int] | None = None,
    run_id: int | None = None,
) -> dict:
    """Move every pending match with `expires_at <= as_of` to expired and tell its donor;
    only those of `match_ids` when given, whose summary then says why each target it did not
    expire was left. Each match names `run_id`, the run that expired it."""
    sample: list[int] = []
    # Every expired id of a targeted run (at most the targets), to report the others.
    expired_targets: list[int] = []

    def apply_batch() -> Counter | None:
        claimed = list(
            matches_due(as_of=as_of, match_ids=match_ids)
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("pk")
            .values_list("pk", "amount", "donor__user_id", "expires_at")[:batch_size]
        )
        if not claimed:
            return None
        ids = [row[0] for row in claimed]
        updated = MATCH_TRANSITIONS.update(
            Match.objects.filter(expires_at__lte=as_of, pk__any=ids),
            source={MatchStatus.PENDING},
            target=MatchStatus.EXPIRED,
            expired_at=timezone.now(),
            expired_by_run_id=run_id,
        )
        if updated != len(ids):
            raise RuntimeError(f"claimed {len(ids)} matches but expired {updated}")
        queued = notifications_queue(
            drafts=[
                NotificationDraft(
                    donor_user,
                    Channel.PUSH,
                    "match_expired",
                    f"match-expired:{pk}",
                    {"match_id": pk, "amount": amount, "expired_at": expires_at.isoformat()},
                )
                for pk, amount, donor_user, expires_at in claimed
            ]
        )
        sample.extend(ids[: SAMPLE_SIZE - len(sample)])
        if match_ids is not None:
            expired_targets.extend(ids)
        return Counter(
            matches_expired=updated,
            amount_unmatched=sum(row[1] for row in claimed),
            notifications_queued=queued,
        )

    totals = sweep_in_batches(
        apply_batch=apply_batch, on_progress=on_progress, progress_key="matches_expired"
    )
    summary = {
        "matches_expired": totals["matches_expired"],
        "amount_unmatched": totals["amount_unmatched"],
        "notifications_queued": totals["notifications_queued"],
        "batches": totals["batches"],
        "sample_ids": sample,
    }
    if match_ids is not None:
        summary.update(_targets_report(as_of=as_of, match_ids=match_ids, handled=expired_targets))
    return summary
