"""Delivering the notification outbox through its channel backends."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from jobs.ratelimits import rate_limiter
from jobs.sweeps import PkRange, ProgressCallback, within
from ledger.channels import channel_backend
from ledger.models import Notification
from ledger.statuses import NOTIFICATION_TRANSITIONS, NotificationStatus

logger = logging.getLogger("steward.notifications")

Log = logging.Logger | logging.LoggerAdapter

LOST_SEND = (
    "delivery outcome unknown: the worker was lost while sending; not resent, so the "
    "notification cannot arrive twice"
)


def notifications_due(*, as_of: datetime, pk_range: PkRange | None = None):
    due = Notification.objects.filter(status=NotificationStatus.PENDING).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=as_of)
    )
    return within(due, pk_range)


def _claimed_before_timeout(*, as_of: datetime, pk_range: PkRange | None):
    cutoff = as_of - timedelta(minutes=settings.NOTIFICATION_SENDING_TIMEOUT_MINUTES)
    return within(Notification.objects.filter(claimed_at__lt=cutoff), pk_range)


def _lost_sends(*, as_of: datetime, pk_range: PkRange | None):
    return _claimed_before_timeout(as_of=as_of, pk_range=pk_range).filter(
        status=NotificationStatus.SENDING
    )


def notifications_deliver_preview(*, as_of: datetime, pk_range: PkRange | None = None) -> dict:
    by_channel = dict(
        notifications_due(as_of=as_of, pk_range=pk_range)
        .values_list("channel")
        .annotate(n=Count("pk"))
    )
    return {
        "due": sum(by_channel.values()),
        "due_by_channel": by_channel,
        "lost_sends_failed": _lost_sends(as_of=as_of, pk_range=pk_range).count(),
    }


def notifications_deliver_due(
    *,
    as_of: datetime,
    batch_size: int = 1_000,
    on_progress: ProgressCallback | None = None,
    pk_range: PkRange | None = None,
    log: Log = logger,
) -> dict:
    """Send every pending notification due by `as_of`, each at most once.

    A batch is claimed (PENDING -> SENDING) and committed before anything is sent, so two
    workers never send the same row; a send that may have happened is never repeated.
    Failures are retried with exponential backoff and fail after NOTIFICATION_MAX_ATTEMPTS.
    A channel that reaches its fleet-wide rate limit is left for the next run. Failures and
    rate limits are logged to `log` (the run's own logger, from its job).
    """
    totals: Counter = Counter()
    totals["lost_sends_failed"] = NOTIFICATION_TRANSITIONS.update(
        _claimed_before_timeout(as_of=as_of, pk_range=pk_range),
        source={NotificationStatus.SENDING},
        target=NotificationStatus.FAILED,
        last_error=LOST_SEND,
    )
    limited: set[str] = set()
    while claimed := _claim(
        as_of=as_of, batch_size=batch_size, skip_channels=limited, pk_range=pk_range
    ):
        _send_batch(claimed, totals=totals, limited=limited, log=log)
        totals["batches"] += 1
        if on_progress:
            on_progress(totals["sent"] + totals["retry_scheduled"] + totals["failed"])
    return {
        "sent": totals["sent"],
        "retry_scheduled": totals["retry_scheduled"],
        "failed": totals["failed"],
        "rate_limited_channels": sorted(limited),
        "lost_sends_failed": totals["lost_sends_failed"],
        "sent_by_channel": {
            key.removeprefix("sent_"): value
            for key, value in sorted(totals.items())
            if key.startswith("sent_")
        },
        "batches": totals["batches"],
    }


@transaction.atomic
def _claim(
    *, as_of: datetime, batch_size: int, skip_channels: set[str], pk_range: PkRange | None
) -> list[Notification]:
    ids = list(
        notifications_due(as_of=as_of, pk_range=pk_range)
        .exclude(channel__in=skip_channels)
        .select_for_update(skip_locked=True)
        .order_by("pk")
        .values_list("pk", flat=True)[:batch_size]
    )
    if not ids:
        return []
    NOTIFICATION_TRANSITIONS.update(
        Notification.objects.filter(pk__any=ids),
        source={NotificationStatus.PENDING},
        target=NotificationStatus.SENDING,
        claimed_at=timezone.now(),
        attempts=F("attempts") + 1,
    )
    return list(Notification.objects.filter(pk__any=ids).select_related("user").order_by("pk"))


def _send_batch(
    claimed: list[Notification], *, totals: Counter, limited: set[str], log: Log
) -> None:
    sent: list[int] = []
    unsent: list[int] = []
    for notification in claimed:
        if notification.channel in limited:
            unsent.append(notification.pk)
            continue
        limiter = rate_limiter(f"channel-{notification.channel}")
        if limiter is None:
            _send_one(notification, sent=sent, totals=totals, log=log)
            continue
        with limiter.acquire(raise_on_failure=False) as acquired:
            if acquired:
                _send_one(notification, sent=sent, totals=totals, log=log)
            else:
                log.warning(
                    "Channel %s reached its rate limit; the rest waits for the next run.",
                    notification.channel,
                )
                limited.add(notification.channel)
                unsent.append(notification.pk)
    now = timezone.now()
    NOTIFICATION_TRANSITIONS.update(
        Notification.objects.filter(pk__any=sent),
        source={NotificationStatus.SENDING},
        target=NotificationStatus.SENT,
        sent_at=now,
        last_error="",
    )
    # Never handed to a backend: back to pending without spending an attempt.
    NOTIFICATION_TRANSITIONS.update(
        Notification.objects.filter(pk__any=unsent),
        source={NotificationStatus.SENDING},
        target=NotificationStatus.PENDING,
        claimed_at=None,
        attempts=F("attempts") - 1,
    )


def _send_one(notification: Notification, *, sent: list[int], totals: Counter, log: Log) -> None:
    try:
        channel_backend(notification.channel).send(notification)
    except Exception as exc:
        _record_send_failure(notification, f"{type(exc).__name__}: {exc}", totals=totals, log=log)
        return
    sent.append(notification.pk)
    totals["sent"] += 1
    totals[f"sent_{notification.channel}"] += 1


def _record_send_failure(
    notification: Notification, error: str, *, totals: Counter, log: Log
) -> None:
    if notification.attempts >= settings.NOTIFICATION_MAX_ATTEMPTS:
        target = NotificationStatus.FAILED
        changes = {}
        totals["failed"] += 1
        log.error(
            "Notification %s failed after %s attempts: %s",
            notification.dedupe_key,
            notification.attempts,
            error,
        )
    else:
        backoff = settings.NOTIFICATION_BACKOFF_SECONDS * 2 ** (notification.attempts - 1)
        target = NotificationStatus.PENDING
        changes = {
            "next_attempt_at": timezone.now() + timedelta(seconds=backoff),
            "claimed_at": None,
        }
        totals["retry_scheduled"] += 1
        log.warning(
            "Notification %s attempt %s failed (%s); retrying in %ss",
            notification.dedupe_key,
            notification.attempts,
            error,
            backoff,
        )
    NOTIFICATION_TRANSITIONS.update(
        Notification.objects.filter(pk=notification.pk),
        source={NotificationStatus.SENDING},
        target=target,
        last_error=error,
        **changes,
    )
