"""The nightly cleanup: stale game sessions, orphaned scores, the score archive, and pruning
sent notifications. (Old job runs are the engine's own `prune_job_runs`.)

Boundaries are strict: a session active exactly `SESSION_EXPIRY_MINUTES` is kept, and so is
a score exactly `LEADERBOARD_ARCHIVE_AGE_DAYS` old; only sent notifications are pruned, after
`NOTIFICATION_RETENTION_DAYS`. Every step deletes in batches of claimed primary keys, each
batch in its own transaction. A run may be given some of the steps; they still run in their
fixed order, and its summary has just their figures and the `steps` it was given.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from jobs.sweeps import (
    PkRange,
    ProgressCallback,
    claim_batch,
    delete_in_batches,
    sweep_in_batches,
    within,
)
from leaderboard.models import ArchivedScore, GameSession, Score, SessionStatus
from ledger.models import Notification
from ledger.statuses import NotificationStatus

ARCHIVE_FIELDS = ("pk", "player_id", "game", "points", "achieved_at", "session_id")

# In the order they run: a stale session's scores become orphans before the orphan step, and
# are no longer archived.
STALE_SESSIONS = "stale_sessions"
ORPHAN_SCORES = "orphan_scores"
SCORE_ARCHIVE = "score_archive"
SENT_NOTIFICATIONS = "sent_notifications"
CLEANUP_STEPS = (STALE_SESSIONS, ORPHAN_SCORES, SCORE_ARCHIVE, SENT_NOTIFICATIONS)


def sessions_stale(*, as_of: datetime):
    cutoff = as_of - timedelta(minutes=settings.SESSION_EXPIRY_MINUTES)
    return GameSession.objects.filter(status=SessionStatus.ACTIVE, started_at__lt=cutoff)


def scores_orphaned():
    return Score.objects.filter(session__isnull=True)


def scores_to_archive(*, as_of: datetime, pk_range: PkRange | None = None):
    cutoff = as_of - timedelta(days=settings.LEADERBOARD_ARCHIVE_AGE_DAYS)
    return within(Score.objects.filter(achieved_at__lt=cutoff, session__isnull=False), pk_range)


def notifications_expired(*, as_of: datetime):
    kept = as_of - timedelta(days=settings.NOTIFICATION_RETENTION_DAYS)
    return Notification.objects.filter(status=NotificationStatus.SENT, sent_at__lt=kept)


def cleanup_archives(*, steps: Collection[str] | None = None) -> bool:
    """Whether a cleanup of `steps` (all when None) archives scores."""
    return settings.LEADERBOARD_ARCHIVING and SCORE_ARCHIVE in (steps or CLEANUP_STEPS)


def cleanup_preview(*, as_of: datetime, steps: Collection[str] | None = None) -> dict:
    """The counts `cleanup_run` would produce: the scores of the stale sessions become
    orphans (and are deleted as such, when that step runs too) before anything is archived."""
    chosen = steps or CLEANUP_STEPS
    # The sessions whose scores are orphans by the time the later steps run.
    orphaning = sessions_stale(as_of=as_of)
    if STALE_SESSIONS not in chosen:
        orphaning = orphaning.none()
    preview: dict = {}
    if STALE_SESSIONS in chosen:
        preview["sessions_deleted"] = orphaning.count()
    if ORPHAN_SCORES in chosen:
        preview["orphan_scores_deleted"] = Score.objects.filter(
            Q(session__isnull=True) | Q(session__in=orphaning)
        ).count()
    if SCORE_ARCHIVE in chosen:
        archiving = settings.LEADERBOARD_ARCHIVING
        preview["scores_archived"] = (
            scores_to_archive(as_of=as_of).exclude(session__in=orphaning).count()
            if archiving
            else 0
        )
        preview["archiving"] = archiving
    if SENT_NOTIFICATIONS in chosen:
        preview["notifications_deleted"] = notifications_expired(as_of=as_of).count()
    return preview if steps is None else {**preview, "steps": list(steps)}


def scores_archive_due(
    *,
    as_of: datetime,
    batch_size: int = 1_000,
    on_progress: ProgressCallback | None = None,
    pk_range: PkRange | None = None,
) -> int:
    """Copy old scores into the archive and delete them, batch by batch in one transaction
    each, so a score is always in exactly one of the two tables."""

    def apply_batch() -> Counter | None:
        rows = claim_batch(
            scores_to_archive(as_of=as_of, pk_range=pk_range), batch_size, *ARCHIVE_FIELDS
        )
        if not rows:
            return None
        now = timezone.now()
        ArchivedScore.objects.bulk_create(
            [
                ArchivedScore(
                    id=pk,
                    player_id=player_id,
                    game=game,
                    points=points,
                    achieved_at=achieved_at,
                    session_id=session_id,
                    archived_at=now,
                )
                for pk, player_id, game, points, achieved_at, session_id in rows
            ]
        )
        deleted, _ = Score.objects.filter(pk__in=[row[0] for row in rows]).delete()
        if deleted != len(rows):
            raise RuntimeError(f"archived {len(rows)} scores but deleted {deleted}")
        return Counter(scores_archived=deleted)

    return sweep_in_batches(
        apply_batch=apply_batch, on_progress=on_progress, progress_key="scores_archived"
    )["scores_archived"]


def cleanup_run(
    *,
    as_of: datetime,
    batch_size: int = 1_000,
    on_progress: ProgressCallback | None = None,
    archive: bool = True,
    steps: Collection[str] | None = None,
) -> dict:
    """Delete stale sessions (their scores become orphans), then orphaned scores, archive old
    scores (unless `archive` is False: shard runs do it), and prune sent notifications; just
    the steps of `steps` (in that order still) when given."""
    chosen = steps or CLEANUP_STEPS
    options = {"batch_size": batch_size, "on_progress": on_progress}
    summary: dict = {}
    if STALE_SESSIONS in chosen:
        summary["sessions_deleted"] = delete_in_batches(
            lambda: sessions_stale(as_of=as_of), key="sessions_deleted", **options
        )
    if ORPHAN_SCORES in chosen:
        summary["orphan_scores_deleted"] = delete_in_batches(
            scores_orphaned, key="orphan_scores_deleted", **options
        )
    if SCORE_ARCHIVE in chosen:
        archiving = settings.LEADERBOARD_ARCHIVING
        summary["scores_archived"] = (
            scores_archive_due(as_of=as_of, **options) if archiving and archive else 0
        )
        summary["archiving"] = archiving
    if SENT_NOTIFICATIONS in chosen:
        summary["notifications_deleted"] = delete_in_batches(
            lambda: notifications_expired(as_of=as_of), key="notifications_deleted", **options
        )
    return summary if steps is None else {**summary, "steps": list(steps)}
