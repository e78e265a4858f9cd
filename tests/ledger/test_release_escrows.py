"""The release_escrows job, run through the runner: boundary, full effect, idempotence, dry run."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from jobs.models import RunStatus
from ledger.models import Asset, DonationCycle, Escrow, Notification, Transfer, TransferKind, Wallet
from ledger.services.transfers import TRANSFER_NAMESPACE
from ledger.statuses import CycleStatus, EscrowStatus
from tests.factories import HOLD, WalletFactory, donation_at, funded_wallet
from tests.ledger.helpers import counts_of, ledger_snapshot, run_job

pytestmark = pytest.mark.django_db

AS_OF = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
COUNT_KEYS = (
    "escrows_released",
    "amount_released",
    "coins_awarded",
    "cycles_obligated",
    "notifications_queued",
    "sample_ids",
)


def test_an_escrow_is_due_exactly_when_its_hold_ends_and_not_a_microsecond_before():
    # given one escrow whose hold ends exactly at as_of and one that ends a microsecond later
    due = donation_at(at=AS_OF - HOLD).escrow
    not_yet = donation_at(at=AS_OF - HOLD + MICROSECOND).escrow
    assert due.hold_until == AS_OF
    assert not_yet.hold_until == AS_OF + MICROSECOND

    # when the job runs as of that instant
    run = run_job("release_escrows", as_of=AS_OF)

    # then only the escrow whose hold_until == as_of is released
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary["escrows_released"] == 1
    due.refresh_from_db()
    not_yet.refresh_from_db()
    assert due.status == EscrowStatus.RELEASED
    assert not_yet.status == EscrowStatus.HOLDING
    assert not_yet.released_at is None
    assert DonationCycle.objects.get(donation_id=not_yet.donation_id).status == (
        CycleStatus.PENDING
    )


def test_release_moves_the_money_awards_coins_obligates_the_cycle_and_notifies_both():
    # given a donor who gave 12,300 kobo to a recipient an hour more than the hold ago
    donor = funded_wallet(1_000_000)
    recipient = WalletFactory()
    donation = donation_at(
        at=AS_OF - HOLD - timedelta(hours=1), amount=12_300, donor=donor, recipient=recipient
    )
    escrow = donation.escrow
    recipient.refresh_from_db()
    donor.refresh_from_db()
    assert (recipient.receivable_balance, recipient.spendable_balance) == (12_300, 0)
    assert (donor.spendable_balance, donor.charity_coins) == (1_000_000 - 12_300, 0)

    # when the job runs
    run = run_job("release_escrows", as_of=AS_OF)

    # then the run reports exactly what it did
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary == {
        "escrows_released": 1,
        "amount_released": 12_300,
        "coins_awarded": settings.DONOR_RELEASE_COINS,
        "cycles_obligated": 1,
        "notifications_queued": 2,
        "batches": 1,
        "sample_ids": [escrow.pk],
    }
    # and the recipient's receivable became spendable; the donor got 50 coins
    recipient.refresh_from_db()
    donor.refresh_from_db()
    assert (recipient.receivable_balance, recipient.spendable_balance) == (0, 12_300)
    assert donor.charity_coins == 50
    assert donor.spendable_balance == 1_000_000 - 12_300
    # and the escrow is released by this run
    escrow.refresh_from_db()
    assert escrow.status == EscrowStatus.RELEASED
    assert escrow.released_at is not None
    assert escrow.released_by_run_id == run.pk
    # and the recipient's cycle is obligated, due CYCLE_DUE_DAYS after as_of
    cycle = DonationCycle.objects.get(donation=donation)
    assert cycle.status == CycleStatus.OBLIGATED
    assert cycle.obligated_at is not None
    assert cycle.due_at == AS_OF + timedelta(days=settings.CYCLE_DUE_DAYS)
    assert cycle.wallet_id == recipient.pk
    # and two transfers with ids derived from the business event, linked to the run
    transfers = {t.reference: t for t in Transfer.objects.filter(job_run=run).order_by("reference")}
    release_ref = f"escrow-release:{escrow.pk}"
    coins_ref = f"escrow-coins:{escrow.pk}"
    assert set(transfers) == {release_ref, coins_ref}
    release = transfers[release_ref]
    assert release.id == uuid.uuid5(TRANSFER_NAMESPACE, release_ref)
    assert (release.kind, release.asset, release.amount) == (
        TransferKind.ESCROW_RELEASE,
        Asset.MONEY,
        12_300,
    )
    assert release.debit_account == f"wallet:{recipient.pk}:receivable"
    assert release.credit_account == f"wallet:{recipient.pk}:spendable"
    coins = transfers[coins_ref]
    assert coins.id == uuid.uuid5(TRANSFER_NAMESPACE, coins_ref)
    assert (coins.kind, coins.asset, coins.amount) == (TransferKind.COIN_AWARD, Asset.COINS, 50)
    assert coins.debit_account == "system:coin_issuance"
    assert coins.credit_account == f"wallet:{donor.pk}:coins"
    # and one outbox row for each side, keyed by the escrow
    notifications = {
        n.dedupe_key: n for n in Notification.objects.filter(kind__startswith="escrow_released")
    }
    assert set(notifications) == {
        f"escrow-released-donor:{escrow.pk}",
        f"escrow-released-recipient:{escrow.pk}",
    }
    to_donor = notifications[f"escrow-released-donor:{escrow.pk}"]
    to_recipient = notifications[f"escrow-released-recipient:{escrow.pk}"]
    assert (to_donor.user_id, to_donor.channel) == (donor.user_id, "push")
    assert (to_recipient.user_id, to_recipient.channel) == (recipient.user_id, "push")
    assert to_donor.payload == {
        "escrow_id": escrow.pk,
        "transaction": donation.reference,
        "amount": 12_300,
        "coins": 50,
    }
    assert to_recipient.payload["amount"] == 12_300


def test_a_second_run_changes_nothing():
    # given escrows released by a first run
    for minutes in (1, 30, 600):
        donation_at(at=AS_OF - HOLD - timedelta(minutes=minutes))
    first = run_job("release_escrows", as_of=AS_OF)
    assert first.summary["escrows_released"] == 3
    before = ledger_snapshot()

    # when the same job runs again as of the same time
    second = run_job("release_escrows", as_of=AS_OF)

    # then it reports nothing to do and every domain table is identical
    assert second.status == RunStatus.SUCCEEDED
    assert counts_of(second.summary, COUNT_KEYS) == {
        "escrows_released": 0,
        "amount_released": 0,
        "coins_awarded": 0,
        "cycles_obligated": 0,
        "notifications_queued": 0,
        "sample_ids": [],
    }
    assert not Transfer.objects.filter(job_run=second).exists()
    assert ledger_snapshot() == before


def test_dry_run_changes_nothing_and_reports_what_the_real_run_then_does():
    # given three due escrows of different amounts and one still in its hold
    for minutes, amount in ((5, 1_000), (50, 2_500), (500, 40_000)):
        donation_at(at=AS_OF - HOLD - timedelta(minutes=minutes), amount=amount)
    donation_at(at=AS_OF - HOLD + timedelta(minutes=5), amount=7_000)
    before = ledger_snapshot()

    # when a dry run is made
    dry = run_job("release_escrows", as_of=AS_OF, dry_run=True)

    # then no domain row changed
    assert dry.status == RunStatus.SUCCEEDED
    assert dry.dry_run is True
    assert dry.summary["dry_run"] is True
    assert ledger_snapshot() == before
    assert Escrow.objects.filter(status=EscrowStatus.RELEASED).count() == 0

    # and a real run then does exactly what the dry run reported
    real = run_job("release_escrows", as_of=AS_OF)
    assert counts_of(real.summary, COUNT_KEYS) == counts_of(dry.summary, COUNT_KEYS)
    assert real.summary["escrows_released"] == 3
    assert real.summary["amount_released"] == 43_500
    assert Escrow.objects.filter(status=EscrowStatus.RELEASED).count() == 3
    assert sum(Wallet.objects.values_list("charity_coins", flat=True)) == 150
