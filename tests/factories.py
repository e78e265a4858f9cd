"""factory_boy factories and builders that go through the ledger's own services."""

from __future__ import annotations

from datetime import datetime, timedelta

import factory
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from factory.django import DjangoModelFactory

from ledger.models import Donation, DonationCycle, Escrow, Match, Wallet
from ledger.services.demo import DemoPlan, demo_seed
from ledger.services.donations import donation_create, match_create, wallet_deposit
from ledger.services.escrows import escrows_release_due
from ledger.statuses import EscrowStatus

HOLD = timedelta(hours=settings.ESCROW_HOLD_HOURS)


class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")


class WalletFactory(DjangoModelFactory):
    class Meta:
        model = Wallet

    user = factory.SubFactory(UserFactory)


def funded_wallet(amount: int = 10_000_000) -> Wallet:
    wallet = WalletFactory()
    wallet_deposit(wallet=wallet, amount=amount, reference=f"test-{wallet.pk}")
    wallet.refresh_from_db()
    return wallet


def donation_at(
    *,
    at: datetime,
    amount: int = 10_000,
    donor: Wallet | None = None,
    recipient: Wallet | None = None,
) -> Donation:
    """A donation made at `at`, so its escrow's hold ends at `at + ESCROW_HOLD_HOURS`."""
    return donation_create(
        donor=donor or funded_wallet(),
        recipient=recipient or WalletFactory(),
        amount=amount,
        at=at,
    )


def match_at(
    *,
    at: datetime,
    amount: int = 10_000,
    donor: Wallet | None = None,
    recipient: Wallet | None = None,
) -> Match:
    """A pending match created at `at`, so it expires at `at + MATCH_EXPIRY_HOURS`."""
    return match_create(
        donor=donor or WalletFactory(),
        recipient=recipient or WalletFactory(),
        amount=amount,
        at=at,
    )


def obligated_cycle(
    *, due_at: datetime, amount: int = 10_000, wallet: Wallet | None = None
) -> DonationCycle:
    """An obligated cycle due at `due_at`, made the way production makes it: a donation whose
    escrow is released by the release service exactly when its hold ends.

    The release sweeps every escrow due at that moment, so build cycles before other escrows.
    """
    released_at = due_at - timedelta(days=settings.CYCLE_DUE_DAYS)
    donation = donation_at(at=released_at - HOLD, amount=amount, recipient=wallet)
    escrows_release_due(as_of=released_at)
    return DonationCycle.objects.get(donation=donation)


def seeded_due_escrow_ids(count: int, *, seed: int = 7) -> list[int]:
    """About `count` escrows past their hold, between demo users, for a release that takes a
    while in small batches; their ids in order."""
    demo_seed(
        plan=DemoPlan(
            users=count // 4,
            seed=seed,
            holding_escrows=4.0,
            due_escrow_share=1.0,
            pending_matches=0,
            obligated_cycles=0,
        )
    )
    return list(
        Escrow.objects.filter(status=EscrowStatus.HOLDING, hold_until__lte=timezone.now())
        .order_by("pk")
        .values_list("pk", flat=True)
    )
