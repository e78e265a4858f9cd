"""Deterministic demo data with work for every ledger job, sized for benchmarks too.

It starts calm: by default no escrow is past its hold, so a first `make run` raises no lag alert,
and half of them come due over the next six hours for the hourly release_escrows to release.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from jobs.exceptions import ConflictError
from ledger.models import (
    Asset,
    Donation,
    DonationCycle,
    Escrow,
    Match,
    TransferKind,
    TransferSubject,
    Wallet,
)
from ledger.services.donations import donation_reference
from ledger.services.transfers import (
    COIN_ISSUANCE,
    EXTERNAL_MONEY,
    TransferLine,
    transfers_book,
    wallet_account,
)
from ledger.statuses import CycleStatus, EscrowStatus

CHUNK = 5_000
MIN_DONATION = 1_000
SOON = timedelta(hours=6)


class DemoDataExists(ConflictError):
    """The database already holds data; demo data goes only into an empty one."""


@dataclasses.dataclass(frozen=True)
class DemoPlan:
    """How much of each kind of work to create; fractions are of `users`, escrow shares are of
    the holding escrows."""

    users: int
    seed: int = 42
    holding_escrows: float = 1.0
    # Past their hold by up to two days: the lag alert fires on them (tests and benchmarks).
    due_escrow_share: float = 0.0
    # Coming due within SOON; the rest come due at any time within the hold.
    soon_escrow_share: float = 0.5
    pending_matches: float = 0.5
    stale_match_share: float = 0.5
    obligated_cycles: float = 0.3


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def demo_username(seed: int, index: int) -> str:
    return f"demo-{seed}-{index:06d}"


@transaction.atomic
def demo_seed(*, plan: DemoPlan, now: datetime | None = None) -> dict:
    """Create users, wallets, deposits, escrows (some due or coming due soon), matches (some
    stale) and cycles (some due within the reminder window, some overdue, some fulfilled)."""
    if plan.users < 2:
        raise ValueError("demo data needs at least 2 users")
    user_model = get_user_model()
    if user_model.objects.filter(username=demo_username(plan.seed, 0)).exists():
        raise DemoDataExists(f"demo data for seed {plan.seed} already exists")
    now = now or timezone.now()
    rng = random.Random(plan.seed)
    password = make_password(None)

    users = user_model.objects.bulk_create(
        [
            user_model(
                username=demo_username(plan.seed, i),
                password=password,
                email=f"{demo_username(plan.seed, i)}@example.com",
            )
            for i in range(plan.users)
        ],
        batch_size=CHUNK,
    )
    wallets = Wallet.objects.bulk_create([Wallet(user=user) for user in users], batch_size=CHUNK)
    balances = {wallet.pk: rng.randrange(50_000, 500_001, 100) for wallet in wallets}
    for part in _chunks(list(balances.items())):
        transfers_book(
            lines=[
                TransferLine(
                    f"deposit:demo-{plan.seed}-{wallet_id}",
                    TransferKind.DEPOSIT,
                    Asset.MONEY,
                    amount,
                    EXTERNAL_MONEY,
                    wallet_account(wallet_id, "spendable"),
                )
                for wallet_id, amount in part
            ]
        )
    wallet_ids = [wallet.pk for wallet in wallets]
    hold = timedelta(hours=settings.ESCROW_HOLD_HOURS)

    def pick_pair(*, donor_needs: int = 0) -> tuple[int, int]:
        for _ in range(1_000):
            donor, recipient = rng.sample(wallet_ids, 2)
            if balances[donor] >= donor_needs:
                return donor, recipient
        raise ValueError("demo donors ran out of money; plan fewer donations per user")

    holding = int(plan.users * plan.holding_escrows)
    obligated = int(plan.users * plan.obligated_cycles)
    donation_rows = []
    for i in range(holding + obligated):
        donor, recipient = pick_pair(donor_needs=MIN_DONATION)
        amount = min(rng.randrange(MIN_DONATION, 20_001, 100), balances[donor])
        balances[donor] -= amount
        if i < holding:
            if i < holding * plan.due_escrow_share:
                age = hold + timedelta(minutes=rng.randrange(1, 48 * 60))
            elif i < holding * (plan.due_escrow_share + plan.soon_escrow_share):
                age = hold - timedelta(minutes=rng.randrange(1, int(SOON.total_seconds() // 60)))
            else:
                age = timedelta(minutes=rng.randrange(0, int(hold.total_seconds() // 60) - 1))
        else:
            age = (
                hold + timedelta(days=settings.CYCLE_DUE_DAYS) - timedelta(days=rng.uniform(-5, 12))
            )
        donation_rows.append((donor, recipient, amount, now - age, i >= holding))

    first_number = (Donation.objects.aggregate(top=Max("pk"))["top"] or 0) + 1
    donations = Donation.objects.bulk_create(
        [
            Donation(
                reference=donation_reference(created_at=created, number=first_number + i),
                donor_id=donor,
                recipient_id=recipient,
                amount=amount,
                created_at=created,
            )
            for i, (donor, recipient, amount, created, _released) in enumerate(donation_rows)
        ],
        batch_size=CHUNK,
    )
    for part in _chunks(donations):
        transfers_book(
            lines=[
                TransferLine(
                    f"donation:{d.pk}",
                    TransferKind.DONATION,
                    Asset.MONEY,
                    d.amount,
                    wallet_account(d.donor_id, "spendable"),
                    wallet_account(d.recipient_id, "receivable"),
                    TransferSubject.DONATION,
                    d.pk,
                )
                for d in part
            ]
        )

    escrows = []
    cycles = []
    counts = {"cycles_obligated_not_due": 0, "cycles_overdue": 0, "cycles_fulfilled": 0}
    for donation, (_donor, _recipient, _amount, created, released) in zip(
        donations, donation_rows, strict=True
    ):
        escrow = Escrow(
            donation=donation,
            donor_id=donation.donor_id,
            recipient_id=donation.recipient_id,
            amount=donation.amount,
            created_at=created,
            hold_until=created + hold,
        )
        cycle = DonationCycle(
            wallet_id=donation.recipient_id,
            donation=donation,
            amount=donation.amount,
            created_at=created,
        )
        if released:
            escrow.status = EscrowStatus.RELEASED
            escrow.released_at = created + hold
            cycle.obligated_at = created + hold
            cycle.due_at = cycle.obligated_at + timedelta(days=settings.CYCLE_DUE_DAYS)
            if rng.random() < 0.4:
                cycle.status = CycleStatus.FULFILLED
                cycle.fulfilled_at = min(
                    now, cycle.obligated_at + timedelta(days=rng.uniform(1, 29))
                )
                counts["cycles_fulfilled"] += 1
            else:
                cycle.status = CycleStatus.OBLIGATED
                key = "cycles_overdue" if cycle.due_at < now else "cycles_obligated_not_due"
                counts[key] += 1
        escrows.append(escrow)
        cycles.append(cycle)
    Escrow.objects.bulk_create(escrows, batch_size=CHUNK)
    DonationCycle.objects.bulk_create(cycles, batch_size=CHUNK)
    released_escrows = [e for e in escrows if e.status == EscrowStatus.RELEASED]
    for part in _chunks(released_escrows):
        lines = []
        for escrow in part:
            lines.append(
                TransferLine(
                    f"escrow-release:{escrow.pk}",
                    TransferKind.ESCROW_RELEASE,
                    Asset.MONEY,
                    escrow.amount,
                    wallet_account(escrow.recipient_id, "receivable"),
                    wallet_account(escrow.recipient_id, "spendable"),
                    TransferSubject.ESCROW,
                    escrow.pk,
                )
            )
            lines.append(
                TransferLine(
                    f"escrow-coins:{escrow.pk}",
                    TransferKind.COIN_AWARD,
                    Asset.COINS,
                    settings.DONOR_RELEASE_COINS,
                    COIN_ISSUANCE,
                    wallet_account(escrow.donor_id, "coins"),
                    TransferSubject.ESCROW,
                    escrow.pk,
                )
            )
        transfers_book(lines=lines)

    match_count = int(plan.users * plan.pending_matches)
    matches = []
    for i in range(match_count):
        donor, recipient = pick_pair()
        stale = i < match_count * plan.stale_match_share
        expiry = timedelta(hours=settings.MATCH_EXPIRY_HOURS)
        created = now - (
            expiry + timedelta(minutes=rng.randrange(1, 600))
            if stale
            else timedelta(minutes=rng.randrange(0, int(expiry.total_seconds() // 60)))
        )
        matches.append(
            Match(
                donor_id=donor,
                recipient_id=recipient,
                amount=rng.randrange(1_000, 20_001, 100),
                created_at=created,
                expires_at=created + expiry,
            )
        )
    Match.objects.bulk_create(matches, batch_size=CHUNK)

    return {
        "users": plan.users,
        "escrows_holding": holding,
        "escrows_due": sum(
            1 for e in escrows if e.status == EscrowStatus.HOLDING and e.hold_until <= now
        ),
        "escrows_due_soon": sum(
            1
            for e in escrows
            if e.status == EscrowStatus.HOLDING and now < e.hold_until <= now + SOON
        ),
        "matches_pending": match_count,
        "matches_stale": sum(1 for m in matches if m.expires_at <= now),
        **counts,
    }
