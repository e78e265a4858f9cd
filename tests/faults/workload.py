"""A workload generator that goes through the ledger services and keeps its own expectation of
every balance, independent of what the jobs record."""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from ledger.models import DonationCycle, Escrow, Match, Wallet
from ledger.services.donations import (
    LedgerError,
    cycle_fulfil,
    donation_create,
    match_accept,
    match_create,
    wallet_deposit,
)
from ledger.statuses import CycleStatus, MatchStatus

logger = logging.getLogger("steward.faults")


@dataclasses.dataclass
class Balances:
    spendable: int = 0
    receivable: int = 0
    coins: int = 0


@dataclasses.dataclass(frozen=True)
class PlannedEscrow:
    donor: int
    recipient: int
    amount: int
    hold_until: datetime


class Workload:
    """Deposits, donations, matches, acceptances and fulfilments, each recorded in the model
    only once its service call has committed."""

    def __init__(self, *, label: str, seed: int = 7) -> None:
        self.label = label
        self.rng = random.Random(seed)
        self.hold = timedelta(hours=settings.ESCROW_HOLD_HOURS)
        self.expiry = timedelta(hours=settings.MATCH_EXPIRY_HOURS)
        self.wallets: list[Wallet] = []
        # Deposits and donations only; releases are added when the expectation is asked for.
        self.base: dict[int, Balances] = {}
        self.escrows: dict[int, PlannedEscrow] = {}
        self.matches: dict[int, datetime] = {}
        self.accepted: set[int] = set()
        self.fulfilled: set[int] = set()
        self.operations: Counter = Counter()
        self.errors: list[str] = []
        # Held by each operation of the background thread and by a backlog made meanwhile, so
        # the two never update the model (or lock wallets) at once.
        self.lock = threading.Lock()

    # --- Operations -----------------------------------------------------------------------

    def open_wallets(
        self, count: int, *, balance: int = 50_000_000, pooled: bool = True
    ) -> list[Wallet]:
        """Funded wallets; random operations pick only `pooled` ones (the others are used only
        where named)."""
        users = get_user_model().objects.bulk_create(
            [get_user_model()(username=f"{self.label}-{len(self.base) + i}") for i in range(count)]
        )
        opened = Wallet.objects.bulk_create([Wallet(user=user) for user in users])
        for wallet in opened:
            wallet_deposit(wallet=wallet, amount=balance, reference=f"{self.label}-{wallet.pk}")
            self.base[wallet.pk] = Balances(spendable=balance)
        if pooled:
            self.wallets += opened
        return opened

    def _pick_pair(self, donor: Wallet | None, recipient: Wallet | None) -> tuple[Wallet, Wallet]:
        donor = donor or self.rng.choice(self.wallets)
        while recipient is None or recipient.pk == donor.pk:
            recipient = self.rng.choice(self.wallets)
        return donor, recipient

    def donate(
        self,
        *,
        due_in: timedelta,
        donor: Wallet | None = None,
        recipient: Wallet | None = None,
        amount: int | None = None,
    ) -> Escrow:
        """A donation whose escrow's hold ends `due_in` from now (negative: already due)."""
        donor, recipient = self._pick_pair(donor, recipient)
        amount = amount or self.rng.randrange(100, 10_000)
        if self.base[donor.pk].spendable < amount:
            raise ValueError(f"the model has wallet {donor.pk} short of {amount}")
        at = timezone.now() + due_in - self.hold
        donation = donation_create(donor=donor, recipient=recipient, amount=amount, at=at)
        self._record_donation(donor.pk, recipient.pk, amount, donation.escrow)
        self.operations["donate"] += 1
        return donation.escrow

    def _record_donation(self, donor: int, recipient: int, amount: int, escrow: Escrow) -> None:
        self.base[donor].spendable -= amount
        self.base[recipient].receivable += amount
        self.escrows[escrow.pk] = PlannedEscrow(donor, recipient, amount, escrow.hold_until)

    def backlog(
        self,
        count: int,
        *,
        due: bool = True,
        donor: Wallet | None = None,
        recipient: Wallet | None = None,
    ) -> None:
        """Escrows already past their hold (or, with `due=False`, a day from the end of it),
        between random wallets unless `donor` or `recipient` is given."""
        with self.lock, transaction.atomic():
            for _ in range(count):
                seconds = (
                    -self.rng.randrange(1, 3_600) if due else self.rng.randrange(3_600, 86_400)
                )
                self.donate(due_in=timedelta(seconds=seconds), donor=donor, recipient=recipient)

    def propose_match(self, *, expires_in: timedelta) -> Match:
        donor, recipient = self._pick_pair(None, None)
        at = timezone.now() + expires_in - self.expiry
        match = match_create(
            donor=donor, recipient=recipient, amount=self.rng.randrange(100, 10_000), at=at
        )
        self.matches[match.pk] = match.expires_at
        self.operations["match"] += 1
        return match

    def accept_one(self) -> None:
        now = timezone.now()
        open_ids = [
            pk
            for pk, expires_at in self.matches.items()
            if pk not in self.accepted and expires_at > now + timedelta(seconds=2)
        ]
        if not open_ids:
            return
        match = Match.objects.select_related("donor", "recipient").get(pk=self.rng.choice(open_ids))
        if self.base[match.donor_id].spendable < match.amount:
            return
        try:
            donation = match_accept(match=match, at=now)
        except LedgerError:
            # The expiry sweep got there first: a race the model allows for.
            self.operations["accept_lost_to_expiry"] += 1
            return
        self.accepted.add(match.pk)
        self._record_donation(match.donor_id, match.recipient_id, match.amount, donation.escrow)
        self.operations["accept"] += 1

    def fulfil_one(self) -> None:
        cycle = (
            DonationCycle.objects.filter(
                status=CycleStatus.OBLIGATED, donation__escrow__in=list(self.escrows)
            )
            .exclude(pk__in=self.fulfilled)
            .order_by("?")
            .first()
        )
        if cycle is None:
            return
        try:
            cycle_fulfil(cycle=cycle)
        except LedgerError:
            self.operations["fulfil_lost_to_default"] += 1
            return
        self.fulfilled.add(cycle.pk)
        self.operations["fulfil"] += 1

    def step(self, *, horizon: timedelta) -> None:
        """One random operation; holds and expiries end within `horizon` from now."""
        choice = self.rng.random()
        due_in = timedelta(seconds=self.rng.uniform(2, horizon.total_seconds()))
        if choice < 0.45:
            self.donate(due_in=due_in)
        elif choice < 0.65:
            self.propose_match(expires_in=due_in)
        elif choice < 0.8:
            self.accept_one()
        else:
            self.fulfil_one()

    def run_until(self, stop: threading.Event, *, horizon: timedelta, pause: float) -> None:
        """The body of a background thread: operations until `stop` is set."""
        try:
            while not stop.is_set():
                try:
                    with self.lock:
                        self.step(horizon=horizon)
                except Exception as exc:
                    logger.exception("workload operation failed")
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(pause)
        finally:
            connection.close()

    # --- Expectation ----------------------------------------------------------------------

    def expected_balances(self, *, released_as_of: datetime | None) -> dict[int, Balances]:
        expected = {pk: dataclasses.replace(balances) for pk, balances in self.base.items()}
        for escrow in self.escrows.values():
            if released_as_of is not None and escrow.hold_until <= released_as_of:
                expected[escrow.recipient].receivable -= escrow.amount
                expected[escrow.recipient].spendable += escrow.amount
                expected[escrow.donor].coins += settings.DONOR_RELEASE_COINS
        return expected

    def differences(
        self, *, released_as_of: datetime | None, expired_as_of: datetime | None
    ) -> list[str]:
        """Every way the database disagrees with the model."""
        problems = list(self.errors)
        expected = self.expected_balances(released_as_of=released_as_of)
        for pk, spendable, receivable, coins in Wallet.objects.filter(
            pk__in=list(expected)
        ).values_list("pk", "spendable_balance", "receivable_balance", "charity_coins"):
            if Balances(spendable, receivable, coins) != expected[pk]:
                problems.append(
                    f"wallet {pk}: {Balances(spendable, receivable, coins)} != {expected[pk]}"
                )
        for pk, status in Escrow.objects.filter(pk__in=list(self.escrows)).values_list(
            "pk", "status"
        ):
            due = released_as_of is not None and self.escrows[pk].hold_until <= released_as_of
            if (status == "released") != due:
                problems.append(f"escrow {pk} is {status}, due={due}")
        for pk, status in Match.objects.filter(pk__in=list(self.matches)).values_list(
            "pk", "status"
        ):
            if pk in self.accepted:
                wanted = MatchStatus.ACCEPTED
            elif expired_as_of is not None and self.matches[pk] <= expired_as_of:
                wanted = MatchStatus.EXPIRED
            else:
                wanted = MatchStatus.PENDING
            if status != wanted:
                problems.append(f"match {pk} is {status}, expected {wanted}")
        unfulfilled = (
            DonationCycle.objects.filter(pk__in=self.fulfilled)
            .exclude(status=CycleStatus.FULFILLED)
            .values_list("pk", flat=True)
        )
        problems += [f"cycle {pk} was fulfilled but is not" for pk in unfulfilled]
        return problems
