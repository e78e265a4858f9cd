"""The cycle_reminders job, run through the runner: the reminder window, defaults and the trust
penalty, idempotence and dry run."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings

from jobs.models import RunStatus
from ledger.models import DonationCycle, Notification, Wallet
from ledger.statuses import CycleStatus
from tests.factories import WalletFactory, obligated_cycle
from tests.ledger.helpers import counts_of, ledger_snapshot, run_job

pytestmark = pytest.mark.django_db

AS_OF = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WINDOW = timedelta(days=settings.CYCLE_REMINDER_DAYS)
MICROSECOND = timedelta(microseconds=1)
COUNT_KEYS = ("reminders_sent", "cycles_defaulted", "notifications_queued")


def _reminder_keys(cycle: DonationCycle) -> set[str]:
    return {f"cycle-reminder-7d:{cycle.pk}:push", f"cycle-reminder-7d:{cycle.pk}:sms"}


def _cycle_notifications():
    """Outbox rows of this job (building cycles also queued escrow-release rows)."""
    return Notification.objects.filter(kind__startswith="cycle_")


def _trust(wallet: Wallet) -> Decimal:
    wallet.refresh_from_db()
    return wallet.trust_score


def test_the_reminder_window_is_as_of_to_as_of_plus_7_days_and_overdue_is_strictly_before():
    # given cycles due at each edge of the window, just past it, and just overdue
    due_now = obligated_cycle(due_at=AS_OF)
    due_at_horizon = obligated_cycle(due_at=AS_OF + WINDOW)
    past_horizon = obligated_cycle(due_at=AS_OF + WINDOW + MICROSECOND)
    overdue = obligated_cycle(due_at=AS_OF - MICROSECOND)

    # when the job runs as of that instant
    run = run_job("cycle_reminders", as_of=AS_OF)

    # then the two cycles within [as_of, as_of + 7d] are reminded and stay obligated
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary["reminders_sent"] == 2
    assert run.summary["cycles_defaulted"] == 1
    for cycle in (due_now, due_at_horizon):
        cycle.refresh_from_db()
        assert cycle.status == CycleStatus.OBLIGATED
        assert cycle.reminded_at is not None
    # and the one just past the horizon is left alone
    past_horizon.refresh_from_db()
    assert past_horizon.status == CycleStatus.OBLIGATED
    assert past_horizon.reminded_at is None
    # and only the one due before as_of is defaulted
    overdue.refresh_from_db()
    assert overdue.status == CycleStatus.DEFAULTED
    assert overdue.reminded_at is None
    keys = set(_cycle_notifications().values_list("dedupe_key", flat=True))
    assert keys == _reminder_keys(due_now) | _reminder_keys(due_at_horizon) | {
        f"cycle-defaulted:{overdue.pk}"
    }


def test_a_reminder_is_one_push_and_one_sms_and_is_sent_only_once():
    # given an obligated cycle due in three days
    cycle = obligated_cycle(due_at=AS_OF + timedelta(days=3), amount=8_800)
    user_id = cycle.wallet.user_id

    # when the job runs
    run = run_job("cycle_reminders", as_of=AS_OF)

    # then one push and one SMS outbox row are written for the cycle's owner
    assert run.summary == {
        "reminders_sent": 1,
        "cycles_defaulted": 0,
        "notifications_queued": 2,
        "batches": 1,
    }
    rows = {n.dedupe_key: n for n in _cycle_notifications()}
    assert set(rows) == _reminder_keys(cycle)
    for channel in ("push", "sms"):
        row = rows[f"cycle-reminder-7d:{cycle.pk}:{channel}"]
        assert (row.user_id, row.channel, row.kind) == (user_id, channel, "cycle_reminder_7d")
        assert row.payload == {
            "cycle_id": cycle.pk,
            "due_at": (AS_OF + timedelta(days=3)).isoformat(),
            "amount": 8_800,
        }
    cycle.refresh_from_db()
    assert cycle.status == CycleStatus.OBLIGATED
    assert _trust(cycle.wallet) == Decimal("1.00")

    # when the job runs again a day later, with the cycle still inside the window
    later = run_job("cycle_reminders", as_of=AS_OF + timedelta(days=1))

    # then no second reminder is sent
    assert later.summary["reminders_sent"] == 0
    assert later.summary["notifications_queued"] == 0
    assert _cycle_notifications().count() == 2


def test_an_overdue_cycle_defaults_with_a_trust_penalty_and_a_notification():
    # given an obligated cycle that was due an hour ago, in a wallet with full trust
    cycle = obligated_cycle(due_at=AS_OF - timedelta(hours=1), amount=5_000)
    wallet = cycle.wallet
    assert _trust(wallet) == Decimal("1.00")

    # when the job runs
    run = run_job("cycle_reminders", as_of=AS_OF)

    # then the cycle is defaulted and the wallet loses 0.10 trust
    assert run.summary["cycles_defaulted"] == 1
    assert run.summary["notifications_queued"] == 1
    cycle.refresh_from_db()
    assert cycle.status == CycleStatus.DEFAULTED
    assert cycle.defaulted_at is not None
    assert _trust(wallet) == Decimal("0.90")
    # and the owner is told once
    notification = _cycle_notifications().get()
    assert notification.dedupe_key == f"cycle-defaulted:{cycle.pk}"
    assert (notification.user_id, notification.channel, notification.kind) == (
        wallet.user_id,
        "push",
        "cycle_defaulted",
    )
    assert notification.payload["trust_penalty"] == "0.10"


def test_trust_loses_0_10_per_default_in_one_run_and_never_goes_below_zero():
    # given a wallet with two overdue cycles, a wallet at 0.05 with one, and one at 0.15 with two
    twice = WalletFactory()
    low = WalletFactory()
    low_twice = WalletFactory()
    for wallet in (twice, low_twice):
        obligated_cycle(due_at=AS_OF - timedelta(days=1), wallet=wallet)
        obligated_cycle(due_at=AS_OF - timedelta(days=2), wallet=wallet)
    obligated_cycle(due_at=AS_OF - timedelta(days=1), wallet=low)
    Wallet.objects.filter(pk=low.pk).update(trust_score=Decimal("0.05"))
    Wallet.objects.filter(pk=low_twice.pk).update(trust_score=Decimal("0.15"))

    # when the job runs once
    run = run_job("cycle_reminders", as_of=AS_OF)

    # then the wallet with two defaults lost 0.20 and the others stopped at zero
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary["cycles_defaulted"] == 5
    assert _trust(twice) == Decimal("0.80")
    assert _trust(low) == Decimal("0.00")
    assert _trust(low_twice) == Decimal("0.00")


def test_a_second_run_changes_nothing():
    # given reminders and defaults made by a first run
    obligated_cycle(due_at=AS_OF + timedelta(days=2))
    obligated_cycle(due_at=AS_OF + timedelta(days=6))
    obligated_cycle(due_at=AS_OF - timedelta(days=4))
    first = run_job("cycle_reminders", as_of=AS_OF)
    assert counts_of(first.summary, COUNT_KEYS) == {
        "reminders_sent": 2,
        "cycles_defaulted": 1,
        "notifications_queued": 5,
    }
    before = ledger_snapshot()

    # when the job runs again as of the same time
    second = run_job("cycle_reminders", as_of=AS_OF)

    # then it reports nothing and no table changed (no trust penalty twice)
    assert second.status == RunStatus.SUCCEEDED
    assert counts_of(second.summary, COUNT_KEYS) == {
        "reminders_sent": 0,
        "cycles_defaulted": 0,
        "notifications_queued": 0,
    }
    assert ledger_snapshot() == before


def test_dry_run_changes_nothing_and_reports_what_the_real_run_then_does():
    # given two cycles to remind, two overdue (one wallet twice) and one not yet in the window
    wallet = WalletFactory()
    remind = [
        obligated_cycle(due_at=AS_OF + timedelta(days=1)),
        obligated_cycle(due_at=AS_OF + timedelta(days=7)),
    ]
    overdue = [
        obligated_cycle(due_at=AS_OF - timedelta(days=1), wallet=wallet),
        obligated_cycle(due_at=AS_OF - timedelta(days=9), wallet=wallet),
    ]
    obligated_cycle(due_at=AS_OF + timedelta(days=20))
    before = ledger_snapshot()

    # when a dry run is made
    dry = run_job("cycle_reminders", as_of=AS_OF, dry_run=True)

    # then nothing changed
    assert dry.status == RunStatus.SUCCEEDED
    assert dry.summary["dry_run"] is True
    assert ledger_snapshot() == before

    # and a real run then does exactly what the dry run reported, on the same cycles
    real = run_job("cycle_reminders", as_of=AS_OF)
    assert counts_of(real.summary, COUNT_KEYS) == counts_of(dry.summary, COUNT_KEYS)
    assert real.summary["notifications_queued"] == 6
    reminded = DonationCycle.objects.filter(reminded_at__isnull=False)
    defaulted = DonationCycle.objects.filter(status=CycleStatus.DEFAULTED)
    assert dry.summary["sample_reminder_ids"] == sorted(c.pk for c in remind)
    assert sorted(reminded.values_list("pk", flat=True)) == sorted(c.pk for c in remind)
    assert dry.summary["sample_default_ids"] == sorted(c.pk for c in overdue)
    assert sorted(defaulted.values_list("pk", flat=True)) == sorted(c.pk for c in overdue)
    assert _trust(wallet) == Decimal("0.80")
