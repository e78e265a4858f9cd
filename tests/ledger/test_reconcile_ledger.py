from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from jobs.models import RunStatus
from leaderboard.services.pools import pool_account, prize_pool_finalize
from ledger.models import Asset, Escrow, TransferKind, TransferSubject, Wallet
from ledger.services.demo import DemoPlan, demo_seed
from ledger.services.transfers import TransferLine, transfers_book, wallet_account
from ledger.statuses import EscrowStatus
from tests.leaderboard.factories import MONDAY, funded_pool, player, score_at
from tests.ledger.helpers import run_job

SUNDAY = (MONDAY - timedelta(days=1)).date()


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
    assert run.status == RunStatus.PARTIAL
    bookings = check(run, "escrows_booked_by_their_status")
    assert bookings["sample"] == [
        {
            "account": f"escrow {escrow.pk} (released)",
            "expected": f"1 escrow_release of {escrow.amount}, at most 1 coin_award",
            "actual": "0 escrow_release of 0, 0 coin_award",
        }
    ]


@pytest.mark.django_db
def test_a_pool_paid_twice_is_reported(seeded_ledger):
    # given a finalized pool that paid its prize, then (refilled) paid it again under
    # another reference
    pool = funded_pool(game="snake", period="daily", start=SUNDAY, fees=2)
    winner = player()
    score_at(user=winner, points=900, at=MONDAY - timedelta(hours=3))
    prize_pool_finalize(pool_id=pool.pk, as_of=MONDAY)
    wallet = Wallet.objects.get(user=winner)
    with transaction.atomic():
        transfers_book(
            lines=[
                TransferLine(
                    f"pool-entry:{pool.pk}:refill",
                    TransferKind.POOL_ENTRY_FEE,
                    Asset.MONEY,
                    pool.amount,
                    wallet_account(wallet.pk, "spendable"),
                    pool_account(pool.pk),
                    TransferSubject.POOL,
                    pool.pk,
                ),
                TransferLine(
                    f"prize-payout:{pool.pk}:again",
                    TransferKind.PRIZE_PAYOUT,
                    Asset.MONEY,
                    pool.amount,
                    pool_account(pool.pk),
                    wallet_account(wallet.pk, "spendable"),
                    TransferSubject.POOL,
                    pool.pk,
                ),
            ]
        )
    run = run_job("reconcile_ledger", as_of=timezone.now())
    assert run.status == RunStatus.PARTIAL
    assert check(run, "pools_paid_once_when_won")["sample"] == [
        {
            "account": f"pool {pool.pk} (finalized)",
            "expected": f"1 prize_payout of {pool.amount}",
            "actual": f"2 of {2 * pool.amount}",
        }
    ]
    assert check(run, "cached_balances_equal_transfer_replay")["ok"]
