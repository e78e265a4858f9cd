"""Deposits, matches, donations and cycle fulfilment: the user-side writes of the ledger."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
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
from ledger.services.transfers import EXTERNAL_MONEY, TransferLine, transfers_book, wallet_account
from ledger.statuses import CYCLE_TRANSITIONS, MATCH_TRANSITIONS, CycleStatus, MatchStatus


class LedgerError(ConflictError):
    """A ledger operation that the current state does not allow."""


def donation_reference(*, created_at: datetime, number: int) -> str:
    return f"TXN-{created_at:%Y%m%d}-{number:05d}"


@transaction.atomic
def wallet_deposit(*, wallet: Wallet, amount: int, reference: str) -> None:
    """Money entering the platform from outside into the wallet's spendable balance."""
    transfers_book(
        lines=[
            TransferLine(
                reference=f"deposit:{reference}",
                kind=TransferKind.DEPOSIT,
                asset=Asset.MONEY,
                amount=amount,
                debit_account=EXTERNAL_MONEY,
                credit_account=wallet_account(wallet.pk, "spendable"),
            )
        ]
    )


@transaction.atomic
def match_create(*, donor: Wallet, recipient: Wallet, amount: int, at: datetime | None = None):
    at = at or timezone.now()
    if donor.pk == recipient.pk:
        raise LedgerError("a donor cannot be matched with themselves")
    return Match.objects.create(
        donor=donor,
        recipient=recipient,
        amount=amount,
        created_at=at,
        expires_at=at + timedelta(hours=settings.MATCH_EXPIRY_HOURS),
    )


@transaction.atomic
def match_accept(*, match: Match, at: datetime | None = None) -> Donation:
    """The donor accepts an unexpired match and gives: the donation goes into escrow."""
    at = at or timezone.now()
    accepted = MATCH_TRANSITIONS.update(
        Match.objects.filter(pk=match.pk, expires_at__gt=at),
        source={MatchStatus.PENDING},
        target=MatchStatus.ACCEPTED,
        accepted_at=at,
    )
    if not accepted:
        raise LedgerError(f"match #{match.pk} is no longer pending")
    return donation_create(
        donor=match.donor, recipient=match.recipient, amount=match.amount, match=match, at=at
    )


@transaction.atomic
def donation_create(
    *,
    donor: Wallet,
    recipient: Wallet,
    amount: int,
    match: Match | None = None,
    at: datetime | None = None,
) -> Donation:
    """Move money from the donor to the recipient's receivable balance, held in escrow."""
    at = at or timezone.now()
    if donor.pk == recipient.pk:
        raise LedgerError("a donor cannot give to themselves")
    donation = Donation.objects.create(
        reference=f"pending-{uuid.uuid4().hex[:20]}",
        donor=donor,
        recipient=recipient,
        amount=amount,
        match=match,
        created_at=at,
    )
    donation.reference = donation_reference(created_at=at, number=donation.pk)
    donation.save(update_fields=["reference"])
    transfers_book(
        lines=[
            TransferLine(
                reference=f"donation:{donation.pk}",
                kind=TransferKind.DONATION,
                asset=Asset.MONEY,
                amount=amount,
                debit_account=wallet_account(donor.pk, "spendable"),
                credit_account=wallet_account(recipient.pk, "receivable"),
                subject_type=TransferSubject.DONATION,
                subject_id=donation.pk,
            )
        ]
    )
    Escrow.objects.create(
        donation=donation,
        donor=donor,
        recipient=recipient,
        amount=amount,
        created_at=at,
        hold_until=at + timedelta(hours=settings.ESCROW_HOLD_HOURS),
    )
    DonationCycle.objects.create(wallet=recipient, donation=donation, amount=amount, created_at=at)
    return donation


@transaction.atomic
def cycle_fulfil(*, cycle: DonationCycle, at: datetime | None = None) -> None:
    at = at or timezone.now()
    fulfilled = CYCLE_TRANSITIONS.update(
        DonationCycle.objects.filter(pk=cycle.pk),
        source={CycleStatus.OBLIGATED},
        target=CycleStatus.FULFILLED,
        fulfilled_at=at,
    )
    if not fulfilled:
        raise LedgerError(f"cycle #{cycle.pk} is not obligated")
