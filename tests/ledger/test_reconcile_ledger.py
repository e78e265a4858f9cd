import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from jobs.models import RunStatus
from ledger.models import Asset, Escrow, TransferKind, Wallet
from ledger.services.demo import DemoPlan, demo_seed
from ledger.services.transfers import TransferLine, transfers_book, wallet_account
from ledger.statuses import EscrowStatus
from tests.ledger.helpers import run_job


@pytest.fixture
def seeded_ledger(db):
    demo_seed(plan=DemoPlan(users=60, seed=3))
    run_job("release_escrows", as_of=timezone.now())


def check(run, name):
    return next(item for item in run.summary["checks"] if item["check"] == name)


@pytest.mark.django_db
def test_a_clean_ledger_reconciles_with_the_totals_checked(seeded_ledger):
    run = run_job("reconcile_ledger", as_of=timezone.now())
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary["clean"] is True
    assert all(item["ok"] for item in run.summary["checks"])
    assert run.summary["transfer_totals"]["money"]["transfers"] > 0
    assert run.summary["transfer_totals"]["coins"]["amount"] > 0


@pytest.mark.django_db
def test_a_balance_changed_without_a_transfer_is_reported_and_alerted(seeded_ledger, settings):
    # given an alert recipient and a wallet whose cached balance was edited behind the ledger
    settings.ADMINS = [("ops", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    wallet = Wallet.objects.order_by("pk").first()
    Wallet.objects.filter(pk=wallet.pk).update(spendable_balance=wallet.spendable_balance + 500)

    # when the ledger is reconciled
    run = run_job("reconcile_ledger", as_of=timezone.now())

    # then the run names the account with expected and actual balances and alerts once
    assert run.status == RunStatus.PARTIAL
    balances = check(run, "cached_balances_equal_transfer_replay")
    assert balances["sample"] == [
        {
            "account": f"wallet:{wallet.pk}:spendable",
            "expected": wallet.spendable_balance,
            "actual": wallet.spendable_balance + 500,
        }
    ]
    assert check(run, "debits_equal_credits_per_asset")["differences"] == 1
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_an_escrow_released_without_its_transfer_is_reported(seeded_ledger):
    escrow = Escrow.objects.filter(status=EscrowStatus.HOLDING).order_by("pk").first()
    Escrow.objects.filter(pk=escrow.pk).update(
        status=EscrowStatus.RELEASED, released_at=timezone.now()
    )
    run = run_job("reconcile_ledger", as_of=timezone.now())
    bookings = check(run, "escrows_booked_exactly_once")
    assert bookings["sample"] == [
        {"account": f"escrow {escrow.pk} (released)", "expected": 1, "actual": 0}
    ]


@pytest.mark.django_db
def test_a_pool_paid_twice_is_reported(seeded_ledger):
    # given a funded pool account that paid two prizes under different references
    winner = Wallet.objects.order_by("pk").first()
    with transaction.atomic():
        transfers_book(
            lines=[
                TransferLine(
                    "fee:a",
                    TransferKind.POOL_ENTRY_FEE,
                    Asset.MONEY,
                    200,
                    wallet_account(winner.pk, "spendable"),
                    "pool:999",
                ),
                TransferLine(
                    "prize-payout:999",
                    TransferKind.PRIZE_PAYOUT,
                    Asset.MONEY,
                    100,
                    "pool:999",
                    wallet_account(winner.pk, "spendable"),
                ),
                TransferLine(
                    "prize-payout:999:again",
                    TransferKind.PRIZE_PAYOUT,
                    Asset.MONEY,
                    100,
                    "pool:999",
                    wallet_account(winner.pk, "spendable"),
                ),
            ]
        )
    run = run_job("reconcile_ledger", as_of=timezone.now())
    assert check(run, "pools_paid_at_most_once")["sample"] == [
        {"account": "pool:999", "expected": 1, "actual": 2}
    ]
    assert check(run, "cached_balances_equal_transfer_replay")["ok"]
