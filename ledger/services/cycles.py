"""Reminding obligated cycles that come due soon, and defaulting overdue ones."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from jobs.sweeps import ProgressCallback, sweep_in_batches
from ledger.lock_objects import wallets_lock
from ledger.models import Channel, DonationCycle, Wallet
from ledger.services.notifications import NotificationDraft, notifications_queue
from ledger.statuses import CYCLE_TRANSITIONS, CycleStatus

logger = logging.getLogger("steward.ledger")

TRUST_PENALTY = Decimal("0.10")
SAMPLE_SIZE = 10
# A run logs its first reminders and defaults one a line each, then how many more.
LOGGED_CYCLES = 20

Log = logging.Logger | logging.LoggerAdapter


def _of_users(cycles, user_ids: Collection[int] | None):
    return cycles if user_ids is None else cycles.filter(wallet__user_id__any=list(user_ids))


def cycles_to_remind(*, as_of: datetime, user_ids: Collection[int] | None = None):
    """Obligated, not yet reminded, and due between now and the reminder horizon; only the
    cycles of `user_ids` when given."""
    horizon = as_of + timedelta(days=settings.CYCLE_REMINDER_DAYS)
    cycles = DonationCycle.objects.filter(
        status=CycleStatus.OBLIGATED,
        reminded_at__isnull=True,
        due_at__gte=as_of,
        due_at__lte=horizon,
    )
    return _of_users(cycles, user_ids)


def cycles_overdue(*, as_of: datetime, user_ids: Collection[int] | None = None):
    """Obligated cycles whose due time has passed; only those of `user_ids` when given."""
    cycles = DonationCycle.objects.filter(status=CycleStatus.OBLIGATED, due_at__lt=as_of)
    return _of_users(cycles, user_ids)


def _targets(user_ids: Collection[int] | None) -> dict:
    return {} if user_ids is None else {"users_targeted": len(user_ids)}


def cycles_remind_and_default_preview(
    *, as_of: datetime, user_ids: Collection[int] | None = None
) -> dict:
    to_remind = cycles_to_remind(as_of=as_of, user_ids=user_ids)
    overdue = cycles_overdue(as_of=as_of, user_ids=user_ids)
    reminders = to_remind.count()
    defaults = overdue.count()
    return {
        "reminders_sent": reminders,
        "cycles_defaulted": defaults,
        "notifications_queued": reminders * 2 + defaults,
        "sample_reminder_ids": list(
            to_remind.order_by("pk").values_list("pk", flat=True)[:SAMPLE_SIZE]
        ),
        "sample_default_ids": list(
            overdue.order_by("pk").values_list("pk", flat=True)[:SAMPLE_SIZE]
        ),
        **_targets(user_ids),
    }


def cycles_remind_and_default(
    *,
    as_of: datetime,
    batch_size: int = 1_000,
    on_progress: ProgressCallback | None = None,
    user_ids: Collection[int] | None = None,
    run_id: int | None = None,
    log: Log = logger,
) -> dict:
    """Remind once (push and SMS) for cycles due within the horizon; default overdue cycles.
    Only the cycles of `user_ids` when given. Each cycle names `run_id`, the run that reminded
    or defaulted it. `log` (the run's own logger, from its job) gets the seed's lines: what
    was found, and the first LOGGED_CYCLES reminders and defaults one a line."""
    scope = {"as_of": as_of, "user_ids": user_ids}
    # Counted together up front: the two sets are disjoint (due from as_of on, overdue
    # before it), so reminding changes neither count.
    due = cycles_to_remind(**scope).count()
    overdue = cycles_overdue(**scope).count()
    if due or overdue:
        log.info("Starting cycle reminders job...")
    if due:
        log.info("Found %s cycles due in %s days", f"{due:,}", settings.CYCLE_REMINDER_DAYS)
    logged: Counter = Counter()
    batch = {"batch_size": batch_size, "run_id": run_id, "log": log, "logged": logged, **scope}
    reminded = sweep_in_batches(
        apply_batch=lambda: _remind_batch(**batch),
        on_progress=on_progress,
        progress_key="reminders_sent",
    )
    if (more := reminded["reminders_sent"] - logged["reminders"]) > 0:
        log.info("... and %s more reminders sent", f"{more:,}")
    if overdue:
        log.info("Found %s overdue cycles", f"{overdue:,}")
    defaulted = sweep_in_batches(
        apply_batch=lambda: _default_batch(**batch),
        on_progress=on_progress,
        progress_key="cycles_defaulted",
    )
    if (more := defaulted["cycles_defaulted"] - logged["defaults"]) > 0:
        log.info("... and %s more cycles defaulted", f"{more:,}")
    if due or overdue:
        log.info(
            "Cycle reminders job completed. Sent %s reminders, defaulted %s cycles.",
            f"{reminded['reminders_sent']:,}",
            f"{defaulted['cycles_defaulted']:,}",
        )
    return {
        "reminders_sent": reminded["reminders_sent"],
        "cycles_defaulted": defaulted["cycles_defaulted"],
        "notifications_queued": reminded["notifications_queued"]
        + defaulted["notifications_queued"],
        "batches": reminded["batches"] + defaulted["batches"],
        **_targets(user_ids),
    }


def _claim(queryset, batch_size: int) -> list[tuple]:
    return list(
        queryset.select_for_update(skip_locked=True, of=("self",))
        .order_by("pk")
        .values_list("pk", "wallet_id", "wallet__user_id", "due_at", "amount")[:batch_size]
    )


def _log_first(log: Log, logged: Counter, key: str, message: str, claimed: list[tuple]) -> None:
    """Log `message` with each claimed cycle and its user while fewer than LOGGED_CYCLES of
    `key` have been logged."""
    for pk, _wallet_id, user_id, *_rest in claimed[: max(LOGGED_CYCLES - logged[key], 0)]:
        log.info(message, pk, user_id)
    logged[key] = min(LOGGED_CYCLES, logged[key] + len(claimed))


def _remind_batch(
    *,
    as_of: datetime,
    batch_size: int,
    user_ids: Collection[int] | None,
    run_id: int | None,
    log: Log,
    logged: Counter,
) -> Counter | None:
    claimed = _claim(cycles_to_remind(as_of=as_of, user_ids=user_ids), batch_size)
    if not claimed:
        return None
    ids = [row[0] for row in claimed]
    updated = (
        cycles_to_remind(as_of=as_of)
        .filter(pk__any=ids)
        .update(reminded_at=timezone.now(), reminded_by_run_id=run_id)
    )
    if updated != len(ids):
        raise RuntimeError(f"claimed {len(ids)} cycles but reminded {updated}")
    drafts = []
    for pk, _wallet_id, user_id, due_at, amount in claimed:
        payload = {"cycle_id": pk, "due_at": due_at.isoformat(), "amount": amount}
        for channel in (Channel.PUSH, Channel.SMS):
            drafts.append(
                NotificationDraft(
                    user_id,
                    channel,
                    "cycle_reminder_7d",
                    f"cycle-reminder-7d:{pk}:{channel}",
                    payload,
                )
            )
    queued = notifications_queue(drafts=drafts)
    _log_first(log, logged, "reminders", "Reminder sent for cycle %s to user %s", claimed)
    return Counter(reminders_sent=updated, notifications_queued=queued)


def _default_batch(
    *,
    as_of: datetime,
    batch_size: int,
    user_ids: Collection[int] | None,
    run_id: int | None,
    log: Log,
    logged: Counter,
) -> Counter | None:
    claimed = _claim(cycles_overdue(as_of=as_of, user_ids=user_ids), batch_size)
    if not claimed:
        return None
    ids = [row[0] for row in claimed]
    now = timezone.now()
    updated = CYCLE_TRANSITIONS.update(
        DonationCycle.objects.filter(due_at__lt=as_of, pk__any=ids),
        source={CycleStatus.OBLIGATED},
        target=CycleStatus.DEFAULTED,
        defaulted_at=now,
        defaulted_by_run_id=run_id,
    )
    if updated != len(ids):
        raise RuntimeError(f"claimed {len(ids)} cycles but defaulted {updated}")
    defaults_per_wallet = Counter(row[1] for row in claimed)
    wallets_lock(defaults_per_wallet)
    wallets_by_default_count: dict[int, list[int]] = {}
    for wallet_id, count in defaults_per_wallet.items():
        wallets_by_default_count.setdefault(count, []).append(wallet_id)
    for count, wallet_ids in sorted(wallets_by_default_count.items()):
        Wallet.objects.filter(pk__any=wallet_ids).update(
            trust_score=Greatest(F("trust_score") - TRUST_PENALTY * count, Value(Decimal("0")))
        )
    drafts = []
    for pk, _wallet_id, user_id, due_at, amount in claimed:
        drafts.append(
            NotificationDraft(
                user_id,
                Channel.PUSH,
                "cycle_defaulted",
                f"cycle-defaulted:{pk}",
                {
                    "cycle_id": pk,
                    "due_at": due_at.isoformat(),
                    "amount": amount,
                    "trust_penalty": str(TRUST_PENALTY),
                },
            )
        )
    queued = notifications_queue(drafts=drafts)
    _log_first(log, logged, "defaults", "Cycle %s marked as defaulted for user %s", claimed)
    return Counter(cycles_defaulted=updated, notifications_queued=queued)
