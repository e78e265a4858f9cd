"""The release's one PostgreSQL statement writes what its statement-by-statement ORM version
(used elsewhere than PostgreSQL) writes: the same escrows, cycles and outbox rows."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction

from ledger.models import DonationCycle, Escrow, Notification
from ledger.services.escrows import BatchClaim, _release_claimed_orm, _release_claimed_postgres
from tests.factories import HOLD, WalletFactory, donation_at, funded_wallet

pytestmark = pytest.mark.django_db

AS_OF = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NOW = AS_OF + timedelta(minutes=5)


def _written_by(release_claimed) -> dict:
    """What `release_claimed` returns and writes, rolled back afterwards."""
    with transaction.atomic():
        claimed, cycles = release_claimed(
            BatchClaim(
                as_of=AS_OF,
                job_run=None,
                batch_size=3,
                pk_range=None,
                escrow_ids=None,
                skip=(),
                now=NOW,
            )
        )
        written = {
            "claimed": claimed,
            "cycles": cycles,
            "escrows": list(
                Escrow.objects.order_by("pk").values_list("pk", "status", "released_at")
            ),
            "obligations": list(
                DonationCycle.objects.order_by("pk").values_list("pk", "status", "due_at")
            ),
            "outbox": list(
                Notification.objects.order_by("pk").values_list(
                    "user_id", "channel", "kind", "payload", "dedupe_key", "status"
                )
            ),
        }
        transaction.set_rollback(True)
    return written


def test_the_postgres_statement_and_the_orm_path_write_the_same_rows():
    # given four due escrows between two wallets (a batch takes three) and one not yet due
    donor, recipient = funded_wallet(1_000_000), WalletFactory()
    for hours in (4, 3, 2, 1):
        donation_at(
            at=AS_OF - HOLD - timedelta(hours=hours),
            amount=1_000 * hours,
            donor=donor,
            recipient=recipient,
        )
    donation_at(at=AS_OF - HOLD + timedelta(hours=1), donor=donor, recipient=recipient)

    # when one batch is released each way, from the same state
    by_statement = _written_by(_release_claimed_postgres)
    by_orm = _written_by(_release_claimed_orm)

    # then both claimed the three oldest and wrote the same rows, outbox rows in the same order
    assert [row[0] for row in by_statement["claimed"]] == sorted(
        Escrow.objects.order_by("pk").values_list("pk", flat=True)[:3]
    )
    assert by_statement["cycles"] == 3
    assert len(by_statement["outbox"]) == 6
    assert by_statement == by_orm
