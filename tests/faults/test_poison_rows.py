"""The release sweep's isolation of poison rows, in process: the companion of scenario 7."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from ledger.models import Escrow
from ledger.services.escrows import escrows_release_due
from ledger.statuses import EscrowStatus
from tests.factories import HOLD, WalletFactory, donation_at, funded_wallet
from tests.invariants import assert_ledger_consistent

pytestmark = pytest.mark.django_db


def test_failing_rows_are_reported_and_every_good_row_is_released_even_after_a_poison_batch():
    # given seven due escrows to seven recipients, four of them tampered so their release fails,
    # the first two making up a whole batch of two
    now = timezone.now()
    due = now - HOLD - timedelta(minutes=1)
    donor = funded_wallet()
    poison = []
    for index in range(7):
        recipient = WalletFactory()
        donation = donation_at(at=due, donor=donor, recipient=recipient)
        if index in (0, 1, 2, 5):
            poison.append(donation.escrow.pk)
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE ledger_wallet SET receivable_balance = receivable_balance - 1 "
                    "WHERE id = %s",
                    [recipient.pk],
                )

    # when the sweep runs in batches of two
    summary = escrows_release_due(as_of=now, batch_size=2)

    # then the three good escrows are released and the four poison ones reported, still holding
    assert summary["escrows_released"] == 3
    assert summary["escrows_failed"] == 4
    assert [row["escrow_id"] for row in summary["failed_escrows"]] == poison
    errors = [row["error"] for row in summary["failed_escrows"]]
    assert all("wallet_receivable_not_negative" in error for error in errors)
    holding = Escrow.objects.filter(status=EscrowStatus.HOLDING).values_list("pk", flat=True)
    assert sorted(holding) == poison

    # and once the balances are repaired, the next sweep releases them and the books balance
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ledger_wallet SET receivable_balance = receivable_balance + 1 "
            "WHERE id IN (SELECT recipient_id FROM ledger_escrow WHERE id = ANY(%s))",
            [poison],
        )
    again = escrows_release_due(as_of=now, batch_size=2)
    assert again["escrows_released"] == 4
    assert "escrows_failed" not in again
    assert_ledger_consistent()
