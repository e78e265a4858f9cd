"""Four sweeps releasing the same 2,000 due escrows at once: each escrow is released once."""

from collections import Counter

import pytest
from django.conf import settings
from django.db.models import F, Sum
from django.utils import timezone

from ledger.models import DonationCycle, Escrow, Notification, Transfer, TransferKind, Wallet
from ledger.services.demo import DemoPlan, demo_seed
from ledger.services.escrows import escrows_due, escrows_release_due
from ledger.statuses import CycleStatus, EscrowStatus
from tests.concurrency import at_once

pytestmark = pytest.mark.django_db(transaction=True)

ESCROWS = 2_000
THREADS = 4


def _money_total() -> int:
    return Wallet.objects.aggregate(total=Sum(F("spendable_balance") + F("receivable_balance")))[
        "total"
    ]


def test_four_concurrent_sweeps_release_each_escrow_exactly_once():
    # given 2,000 escrows past their hold and nothing else to do
    now = timezone.now()
    demo_seed(
        plan=DemoPlan(
            users=ESCROWS,
            seed=7,
            holding_escrows=1.0,
            due_escrow_share=1.0,
            pending_matches=0,
            obligated_cycles=0,
        ),
        now=now,
    )
    escrow_ids = set(escrows_due(as_of=now).values_list("pk", flat=True))
    assert len(escrow_ids) == ESCROWS
    money_before = _money_total()
    assert Wallet.objects.aggregate(coins=Sum("charity_coins"))["coins"] == 0

    # when four threads, each with its own connection, sweep them at the same moment
    results = at_once(
        *[lambda: escrows_release_due(as_of=now, batch_size=50) for _ in range(THREADS)]
    )

    # then no sweep failed and together they released each escrow once
    assert len(results) == THREADS
    assert sum(result["escrows_released"] for result in results) == ESCROWS
    assert sum(result["coins_awarded"] for result in results) == 50 * ESCROWS
    assert sum(1 for result in results if result["escrows_released"]) >= 2, "no overlap"
    assert Escrow.objects.filter(status=EscrowStatus.RELEASED).count() == ESCROWS
    # and every escrow has exactly one release transfer and one coin award
    releases = Counter(
        Transfer.objects.filter(kind=TransferKind.ESCROW_RELEASE).values_list(
            "reference", flat=True
        )
    )
    assert releases == Counter({f"escrow-release:{pk}": 1 for pk in escrow_ids})
    awards = Counter(
        Transfer.objects.filter(kind=TransferKind.COIN_AWARD).values_list("reference", flat=True)
    )
    assert awards == Counter({f"escrow-coins:{pk}": 1 for pk in escrow_ids})
    # and no money was created or lost, while the coins are exactly 50 per escrow
    assert _money_total() == money_before
    assert Wallet.objects.aggregate(receivable=Sum("receivable_balance"))["receivable"] == 0
    assert Wallet.objects.aggregate(coins=Sum("charity_coins"))["coins"] == (
        settings.DONOR_RELEASE_COINS * ESCROWS
    )
    # and each escrow obligated its cycle and notified donor and recipient once
    assert DonationCycle.objects.filter(status=CycleStatus.OBLIGATED).count() == ESCROWS
    assert Notification.objects.count() == 2 * ESCROWS
