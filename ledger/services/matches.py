"""Expiring matches that were not accepted in time."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from django.db.models import Count, Sum
from django.utils import timezone

from jobs.sweeps import ProgressCallback, sweep_in_batches
from ledger.models import Channel, Match
from ledger.services.notifications import NotificationDraft, notifications_queue
from ledger.statuses import MATCH_TRANSITIONS, MatchStatus

SAMPLE_SIZE = 10


def matches_due(*, as_of: datetime):
    return Match.objects.filter(status=MatchStatus.PENDING, expires_at__lte=as_of)


def matches_expire_preview(*, as_of: datetime) -> dict:
    due = matches_due(as_of=as_of)
    totals = due.aggregate(count=Count("pk"), amount=Sum("amount"))
    return {
        "matches_expired": totals["count"],
        "amount_unmatched": totals["amount"] or 0,
        "notifications_queued": totals["count"],
        "sample_ids": list(due.order_by("pk").values_list("pk", flat=True)[:SAMPLE_SIZE]),
    }


def matches_expire_due(
    *,
    as_of: datetime,
    batch_size: int = 1_000,
    on_progress: ProgressCallback | None = None,
) -> dict:
    """Move every pending match with `expires_at <= as_of` to expired and tell its donor."""
    sample: list[int] = []

    def apply_batch() -> Counter | None:
        claimed = list(
            matches_due(as_of=as_of)
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
        return Counter(
            matches_expired=updated,
            amount_unmatched=sum(row[1] for row in claimed),
            notifications_queued=queued,
        )

    totals = sweep_in_batches(
        apply_batch=apply_batch, on_progress=on_progress, progress_key="matches_expired"
    )
    return {
        "matches_expired": totals["matches_expired"],
        "amount_unmatched": totals["amount_unmatched"],
        "notifications_queued": totals["notifications_queued"],
        "batches": totals["batches"],
        "sample_ids": sample,
    }
