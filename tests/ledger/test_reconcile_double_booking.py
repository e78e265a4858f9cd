"""The reconciliation counts bookings per business object and kind, whatever their reference
says: a balanced second release, coin award or prize payout, booked through the ledger's own
service under another reference, is caught; so is one that names no object."""

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.models import RunStatus
from leaderboard.models import PoolStatus, PrizePool
from leaderboard.services.demo import leaderboard_demo_seed
from leaderboard.services.pools import pool_account
from ledger.models import (
    Asset,
    Escrow,
    Milestone,
    MilestoneKind,
    Transfer,
    TransferKind,
    TransferSubject,
    Wallet,
)
from ledger.services.demo import DemoPlan, demo_seed
from ledger.services.transfers import (
    COIN_ISSUANCE,
    EXTERNAL_MONEY,
    TransferLine,
    transfers_book,
    wallet_account,
)
from ledger.statuses import EscrowStatus
from tests.ledger.helpers import run_job

ESCROWS = "escrows_booked_by_their_status"
POOLS = "pools_paid_once_when_won"
UNNAMED = "bookings_name_their_object"


@pytest.fixture
def books(db):
    """The demo's giving and arcade data, a real release and real prize payouts, and the
    day's balance snapshot."""
    demo_seed(plan=DemoPlan(users=60, seed=3, due_escrow_share=0.3))
    leaderboard_demo_seed(wallets=Wallet.objects.all(), seed=3)
    now = timezone.now()
    run_job("release_escrows", as_of=now)
    run_job("finalize_prize_pools", as_of=now)
    run_job("snapshot_balances", as_of=now)


def failing(run) -> set[str]:
    return {item["check"] for item in run.summary["checks"] if not item["ok"]}


def check(run, name):
    return next(item for item in run.summary["checks"] if item["check"] == name)


def reconcile():
    return run_job("reconcile_ledger", as_of=timezone.now())


def released_escrow() -> Escrow:
    return Escrow.objects.filter(
        status=EscrowStatus.RELEASED, released_by_run__isnull=False
    ).order_by("pk")[0]


def book(*lines: TransferLine) -> None:
    with transaction.atomic():
        transfers_book(lines=list(lines))


def second_release(escrow: Escrow, *, named: bool) -> None:
    """The release again under another reference, with the money to move put there first, so
    every balance stays consistent with the transfers."""
    receivable = wallet_account(escrow.recipient_id, "receivable")
    subject = (TransferSubject.ESCROW, escrow.pk) if named else ("", None)
    book(
        TransferLine(
            f"deposit:refill-{escrow.pk}",
            TransferKind.DEPOSIT,
            Asset.MONEY,
            escrow.amount,
            EXTERNAL_MONEY,
            receivable,
        ),
        TransferLine(
            f"manual-release:{escrow.pk}",
            TransferKind.ESCROW_RELEASE,
            Asset.MONEY,
            escrow.amount,
            receivable,
            wallet_account(escrow.recipient_id, "spendable"),
            *subject,
        ),
    )


@pytest.mark.django_db
def test_the_demo_books_with_a_real_release_and_payouts_reconcile_clean(books):
    assert Transfer.objects.filter(kind=TransferKind.PRIZE_PAYOUT).exists()
    assert Escrow.objects.filter(released_by_run__isnull=False).exists()

    run = reconcile()

    assert run.status == RunStatus.SUCCEEDED
    assert run.summary["clean"] is True, [c for c in run.summary["checks"] if not c["ok"]]


@pytest.mark.django_db
def test_a_balanced_second_release_under_another_reference_is_caught(books):
    escrow = released_escrow()
    second_release(escrow, named=True)

    run = reconcile()

    assert run.status == RunStatus.PARTIAL
    assert failing(run) == {ESCROWS}
    assert check(run, ESCROWS)["sample"] == [
        {
            "account": f"escrow {escrow.pk} (released)",
            "expected": f"1 escrow_release of {escrow.amount}, at most 1 coin_award",
            "actual": f"2 escrow_release of {2 * escrow.amount}, 1 coin_award",
        }
    ]
    assert ESCROWS in run.status_reason


@pytest.mark.django_db
def test_a_balanced_second_coin_award_under_another_reference_is_caught(books):
    escrow = released_escrow()
    book(
        TransferLine(
            f"bonus-coins:{escrow.pk}",
            TransferKind.COIN_AWARD,
            Asset.COINS,
            settings.DONOR_RELEASE_COINS,
            COIN_ISSUANCE,
            wallet_account(escrow.donor_id, "coins"),
            TransferSubject.ESCROW,
            escrow.pk,
        )
    )

    run = reconcile()

    assert run.status == RunStatus.PARTIAL
    assert failing(run) == {ESCROWS}
    assert check(run, ESCROWS)["sample"][0]["actual"] == (
        f"1 escrow_release of {escrow.amount}, 2 coin_award"
    )


@pytest.mark.django_db
def test_a_second_release_that_names_no_escrow_is_caught(books):
    escrow = released_escrow()
    second_release(escrow, named=False)

    run = reconcile()

    assert run.status == RunStatus.PARTIAL
    assert failing(run) == {UNNAMED}
    assert check(run, UNNAMED)["sample"] == [
        {
            "account": f"manual-release:{escrow.pk}",
            "expected": "names its escrow, which exists",
            "actual": "no object",
        }
    ]


@pytest.mark.django_db
def test_a_booking_naming_an_object_that_does_not_exist_is_caught(books):
    missing = Escrow.objects.order_by("-pk")[0].pk + 1_000
    wallet = Wallet.objects.order_by("pk")[0]
    book(
        TransferLine(
            "escrow-coins:ghost",
            TransferKind.COIN_AWARD,
            Asset.COINS,
            10,
            COIN_ISSUANCE,
            wallet_account(wallet.pk, "coins"),
            TransferSubject.ESCROW,
            missing,
        )
    )

    run = reconcile()

    assert failing(run) == {UNNAMED}
    assert check(run, UNNAMED)["sample"][0]["actual"] == f"escrow {missing}"


@pytest.mark.parametrize("named", [True, False])
@pytest.mark.django_db
def test_a_balanced_second_payout_of_a_pool_is_caught(books, named):
    # given a pool that paid its prize, refilled and paid again under another reference
    payout = Transfer.objects.filter(kind=TransferKind.PRIZE_PAYOUT).order_by("reference")[0]
    pool = PrizePool.objects.get(pk=payout.subject_id)
    assert pool.status == PoolStatus.FINALIZED
    payer = Wallet.objects.filter(spendable_balance__gte=pool.amount).order_by("pk")[0]
    subject = (TransferSubject.POOL, pool.pk) if named else ("", None)
    book(
        TransferLine(
            f"pool-entry:{pool.pk}:refill",
            TransferKind.POOL_ENTRY_FEE,
            Asset.MONEY,
            pool.amount,
            wallet_account(payer.pk, "spendable"),
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
            payout.credit_account,
            *subject,
        ),
    )

    run = reconcile()

    assert run.status == RunStatus.PARTIAL
    if named:
        assert failing(run) == {POOLS}
        assert check(run, POOLS)["sample"] == [
            {
                "account": f"pool {pool.pk} (finalized)",
                "expected": f"1 prize_payout of {pool.amount}",
                "actual": f"2 of {2 * pool.amount}",
            }
        ]
    else:
        assert failing(run) == {UNNAMED}


@pytest.mark.django_db
def test_a_milestone_bonus_paid_twice_is_caught(books):
    wallet = Wallet.objects.order_by("pk")[0]
    milestone = Milestone.objects.create(
        user_id=wallet.user_id,
        kind=MilestoneKind.COINS_HELD,
        threshold=500,
        value=600,
        reached_at=timezone.now(),
        bonus_coins=25,
    )
    for reference in (f"milestone-bonus:{milestone.pk}", f"milestone-bonus:{milestone.pk}:x"):
        book(
            TransferLine(
                reference,
                TransferKind.MILESTONE_BONUS,
                Asset.COINS,
                25,
                COIN_ISSUANCE,
                wallet_account(wallet.pk, "coins"),
                TransferSubject.MILESTONE,
                milestone.pk,
            )
        )

    run = reconcile()

    assert failing(run) == {"milestones_paid_their_bonus_once"}
    assert check(run, "milestones_paid_their_bonus_once")["sample"] == [
        {
            "account": f"milestone {milestone.pk}",
            "expected": "1 milestone_bonus of 25",
            "actual": "2 of 50",
        }
    ]
