"""A Hypothesis state machine over the ledger services, checked against a model after every step.

Rules: deposit, donate (and self-dealing refused), match, accept, expire, hold (time passes
while escrows hold), release, fulfil, default, boost (grant, and expire as of a later time),
play (enter a prize pool, maybe score) and finalize pool. After every step the ledger's own
invariants and reconciliation hold, and every balance, status and pool equals the model's.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import IntegrityError, transaction
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from leaderboard.models import (
    Boost,
    BoostKind,
    BoostStatus,
    Game,
    PoolPeriod,
    PoolStatus,
    PrizePool,
)
from leaderboard.periods import period_bounds, period_start
from leaderboard.services.games import game_session_complete, game_session_start
from leaderboard.services.pools import (
    pool_account,
    prize_pool_enter,
    prize_pool_open,
    prize_pools_finalize_due,
)
from leaderboard.services.standings import boost_grant, boosts_expire_due
from ledger.models import DonationCycle, Escrow, Match, SystemAccount, Wallet
from ledger.services.cycles import TRUST_PENALTY, cycles_remind_and_default
from ledger.services.donations import (
    LedgerError,
    cycle_fulfil,
    donation_create,
    match_accept,
    match_create,
    wallet_deposit,
)
from ledger.services.escrows import escrows_release_due
from ledger.services.matches import matches_expire_due
from ledger.services.reconcile import ledger_reconcile
from ledger.statuses import CycleStatus, MatchStatus
from tests.factories import WalletFactory
from tests.invariants import assert_ledger_consistent

pytestmark = pytest.mark.django_db

START = datetime(2030, 1, 1, tzinfo=UTC)
WALLETS = 3
OPENING_BALANCE = 50_000

wallet_index = st.integers(min_value=0, max_value=WALLETS - 1)
# Two different wallets: drawn independently they would mostly be the same one.
pairs = st.permutations(range(WALLETS)).map(lambda order: order[:2])
amounts = st.integers(min_value=1, max_value=80_000)
# From within one hold to beyond a cycle's due date, so every transition gets its turn.
hours = st.sampled_from([1, 6, 24, 47, 48, 24 * 8, 24 * 24, 24 * 27, 24 * 31])
# A sweep runs as of the clock, moved on first by this much.
later = st.one_of(st.just(0), hours)
# Recorded this many hours before the clock, so holds and expiries end exactly at a sweep too.
ago = st.sampled_from([0, 1, 23, 24, 47, 48])
boost_values = st.decimals(min_value="0.01", max_value="5", places=2)


@dataclasses.dataclass
class ModelWallet:
    spendable: int = 0
    receivable: int = 0
    coins: int = 0
    trust: Decimal = Decimal("1.00")


@dataclasses.dataclass
class ModelEscrow:
    donor: int
    recipient: int
    amount: int
    hold_until: datetime
    cycle: int
    released: bool = False


@dataclasses.dataclass
class ModelMatch:
    donor: int
    recipient: int
    amount: int
    expires_at: datetime
    status: str = MatchStatus.PENDING


@dataclasses.dataclass
class ModelCycle:
    wallet: int
    status: str = CycleStatus.PENDING
    due_at: datetime | None = None
    reminded: bool = False


@dataclasses.dataclass
class ModelPool:
    game: str
    period: str
    start: datetime
    end: datetime
    amount: int = 0
    held: int = 0
    status: str = PoolStatus.OPEN
    winner: int | None = None


@dataclasses.dataclass(frozen=True)
class ModelScore:
    game: str
    points: int
    achieved_at: datetime
    pk: int
    user: int


class LedgerMachine(RuleBasedStateMachine):
    """Drives the services with a clock of its own and keeps an independent expectation."""

    def __init__(self) -> None:
        super().__init__()
        # Each example runs in a savepoint of the test's transaction, rolled back at teardown.
        self.scope = transaction.atomic()
        self.scope.__enter__()
        self.now = START
        self.wallets: list[Wallet] = []
        self.model: dict[int, ModelWallet] = {}
        self.escrows: dict[int, ModelEscrow] = {}
        self.matches: dict[int, ModelMatch] = {}
        self.cycles: dict[int, ModelCycle] = {}
        self.boosts: dict[int, tuple[datetime, str]] = {}
        self.pools: dict[int, ModelPool] = {}
        self.scores: list[ModelScore] = []
        self.deposits = 0
        self.entries = 0

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self.scope.__exit__(None, None, None)

    @initialize()
    def open_wallets(self) -> None:
        for _ in range(WALLETS):
            wallet = WalletFactory()
            self.wallets.append(wallet)
            self.model[wallet.pk] = ModelWallet()
            self._deposit(wallet, OPENING_BALANCE)

    def _deposit(self, wallet: Wallet, amount: int) -> None:
        self.deposits += 1
        wallet_deposit(wallet=wallet, amount=amount, reference=f"property-{self.deposits}")
        self.model[wallet.pk].spendable += amount

    def _give(self, donor: int, recipient: int, amount: int, donation, at: datetime) -> None:
        self.model[donor].spendable -= amount
        self.model[recipient].receivable += amount
        self.escrows[donation.escrow.pk] = ModelEscrow(
            donor=donor,
            recipient=recipient,
            amount=amount,
            hold_until=at + timedelta(hours=settings.ESCROW_HOLD_HOURS),
            cycle=donation.cycle.pk,
        )
        self.cycles[donation.cycle.pk] = ModelCycle(wallet=recipient)

    @rule(wallet=wallet_index, amount=amounts)
    def deposit(self, wallet: int, amount: int) -> None:
        self._deposit(self.wallets[wallet], amount)

    @rule(wallet=wallet_index, amount=amounts)
    def refuse_self_dealing(self, wallet: int, amount: int) -> None:
        own = self.wallets[wallet]
        with pytest.raises(LedgerError):
            donation_create(donor=own, recipient=own, amount=amount, at=self.now)
        with pytest.raises(LedgerError):
            match_create(donor=own, recipient=own, amount=amount, at=self.now)

    @rule(pair=pairs, amount=amounts, ago=ago)
    def donate(self, pair: tuple[int, int], amount: int, ago: int) -> None:
        giver, receiver = (self.wallets[index] for index in pair)
        at = self.now - timedelta(hours=ago)
        if amount > self.model[giver.pk].spendable:
            # Overspending is refused by the balance's CHECK constraint, changing nothing.
            with pytest.raises(IntegrityError):
                donation_create(donor=giver, recipient=receiver, amount=amount, at=at)
        else:
            donation = donation_create(donor=giver, recipient=receiver, amount=amount, at=at)
            self._give(giver.pk, receiver.pk, amount, donation, at)

    @rule(pair=pairs, amount=amounts, ago=ago)
    def match(self, pair: tuple[int, int], amount: int, ago: int) -> None:
        giver, receiver = (self.wallets[index] for index in pair)
        at = self.now - timedelta(hours=ago)
        match = match_create(donor=giver, recipient=receiver, amount=amount, at=at)
        self.matches[match.pk] = ModelMatch(
            donor=giver.pk,
            recipient=receiver.pk,
            amount=amount,
            expires_at=at + timedelta(hours=settings.MATCH_EXPIRY_HOURS),
        )

    @precondition(lambda self: self.matches)
    @rule(data=st.data())
    def accept(self, data) -> None:
        match_id = data.draw(st.sampled_from(sorted(self.matches)))
        expected = self.matches[match_id]
        match = Match.objects.get(pk=match_id)
        acceptable = expected.status == MatchStatus.PENDING and expected.expires_at > self.now
        if not acceptable:
            with pytest.raises(LedgerError):
                match_accept(match=match, at=self.now)
        elif expected.amount > self.model[expected.donor].spendable:
            # The donation fails, and the acceptance with it: the match stays pending.
            with pytest.raises(IntegrityError):
                match_accept(match=match, at=self.now)
        else:
            donation = match_accept(match=match, at=self.now)
            expected.status = MatchStatus.ACCEPTED
            self._give(expected.donor, expected.recipient, expected.amount, donation, self.now)

    @rule(hours=later)
    def expire(self, hours: int) -> None:
        self.now += timedelta(hours=hours)
        due = [
            match
            for match in self.matches.values()
            if match.status == MatchStatus.PENDING and match.expires_at <= self.now
        ]
        summary = matches_expire_due(as_of=self.now, batch_size=2)
        assert summary["matches_expired"] == len(due)
        for match in due:
            match.status = MatchStatus.EXPIRED

    @rule(hours=hours)
    def hold(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @rule(hours=later)
    def release(self, hours: int) -> None:
        self.now += timedelta(hours=hours)
        due = [e for e in self.escrows.values() if not e.released and e.hold_until <= self.now]
        summary = escrows_release_due(as_of=self.now, batch_size=2)
        assert summary["escrows_released"] == len(due)
        assert summary["amount_released"] == sum(e.amount for e in due)
        for escrow in due:
            escrow.released = True
            self.model[escrow.recipient].receivable -= escrow.amount
            self.model[escrow.recipient].spendable += escrow.amount
            self.model[escrow.donor].coins += settings.DONOR_RELEASE_COINS
            cycle = self.cycles[escrow.cycle]
            cycle.status = CycleStatus.OBLIGATED
            cycle.due_at = self.now + timedelta(days=settings.CYCLE_DUE_DAYS)

    @precondition(lambda self: self.cycles)
    @rule(data=st.data())
    def fulfil(self, data) -> None:
        cycle_id = data.draw(st.sampled_from(sorted(self.cycles)))
        expected = self.cycles[cycle_id]
        cycle = DonationCycle.objects.get(pk=cycle_id)
        if expected.status != CycleStatus.OBLIGATED:
            with pytest.raises(LedgerError):
                cycle_fulfil(cycle=cycle, at=self.now)
            return
        cycle_fulfil(cycle=cycle, at=self.now)
        expected.status = CycleStatus.FULFILLED

    @rule(hours=later)
    def default(self, hours: int) -> None:
        self.now += timedelta(hours=hours)
        obligated = [c for c in self.cycles.values() if c.status == CycleStatus.OBLIGATED]
        horizon = self.now + timedelta(days=settings.CYCLE_REMINDER_DAYS)
        remind = [c for c in obligated if not c.reminded and self.now <= c.due_at <= horizon]
        overdue = [c for c in obligated if c.due_at < self.now]
        summary = cycles_remind_and_default(as_of=self.now, batch_size=2)
        assert summary["reminders_sent"] == len(remind)
        assert summary["cycles_defaulted"] == len(overdue)
        for cycle in remind:
            cycle.reminded = True
        for cycle in overdue:
            cycle.status = CycleStatus.DEFAULTED
            wallet = self.model[cycle.wallet]
            wallet.trust = max(Decimal("0"), wallet.trust - TRUST_PENALTY)

    @rule(wallet=wallet_index, kind=st.sampled_from(BoostKind.values), value=boost_values)
    def boost(self, wallet: int, kind: str, value: Decimal) -> None:
        lasts = timedelta(hours=24)
        boost = boost_grant(
            user=self.wallets[wallet].user,
            kind=kind,
            value=value,
            starts_at=self.now,
            expires_at=self.now + lasts,
        )
        self.boosts[boost.pk] = (self.now + lasts, BoostStatus.ACTIVE)

    @rule(hours=later)
    def expire_boosts(self, hours: int) -> None:
        self.now += timedelta(hours=hours)
        due = [
            pk
            for pk, (expires_at, status) in self.boosts.items()
            if status == BoostStatus.ACTIVE and expires_at <= self.now
        ]
        assert boosts_expire_due(as_of=self.now, batch_size=2) == len(due)
        for pk in due:
            self.boosts[pk] = (self.boosts[pk][0], BoostStatus.EXPIRED)

    @rule(
        wallet=wallet_index,
        game=st.sampled_from(Game.values),
        period=st.sampled_from(PoolPeriod.values),
        fee=amounts,
        points=st.none() | st.integers(min_value=0, max_value=1_000),
    )
    def play(self, wallet: int, game: str, period: str, fee: int, points: int | None) -> None:
        """Pay into the pool of the running period, then score in it (or leave without one)."""
        player = self.wallets[wallet]
        pool = prize_pool_open(
            game=game, period=period, period_start=period_start(period, self.now)
        )
        start, end = period_bounds(period, pool.period_start)
        expected = self.pools.setdefault(pool.pk, ModelPool(game, period, start, end))
        self.entries += 1
        if fee > self.model[player.pk].spendable:
            with pytest.raises(IntegrityError):
                prize_pool_enter(
                    pool=pool, wallet=player, fee=fee, reference=str(self.entries), at=self.now
                )
            return
        prize_pool_enter(
            pool=pool, wallet=player, fee=fee, reference=str(self.entries), at=self.now
        )
        self.model[player.pk].spendable -= fee
        expected.amount += fee
        expected.held += fee
        if points is not None:
            session = game_session_start(player=player.user, game=game, at=self.now)
            score = game_session_complete(session=session, points=points, at=self.now)
            self.scores.append(ModelScore(game, points, self.now, score.pk, player.pk))

    @rule(hours=later)
    def finalize_pools(self, hours: int) -> None:
        self.now += timedelta(hours=hours)
        midnight = self.now.replace(hour=0, minute=0, second=0, microsecond=0)
        due = [p for p in self.pools.values() if p.status == PoolStatus.OPEN and p.end <= midnight]
        summary = prize_pools_finalize_due(as_of=self.now)
        assert summary["pools_due"] == len(due)
        assert summary["pools_failed"] == 0
        for pool in due:
            scores = [
                s
                for s in self.scores
                if s.game == pool.game and pool.start <= s.achieved_at < pool.end
            ]
            if not scores:
                pool.status = PoolStatus.NO_WINNER
                continue
            best = min(scores, key=lambda s: (-s.points, s.achieved_at, s.pk))
            pool.status = PoolStatus.FINALIZED
            pool.winner = best.user
            self.model[best.user].spendable += pool.held
            pool.held = 0

    @invariant()
    def ledger_is_consistent(self) -> None:
        assert_ledger_consistent()
        report = ledger_reconcile()
        assert report["clean"], [check for check in report["checks"] if not check["ok"]]

    @invariant()
    def balances_match_the_model(self) -> None:
        actual = {
            pk: ModelWallet(spendable, receivable, coins, trust)
            for pk, spendable, receivable, coins, trust in Wallet.objects.values_list(
                "pk", "spendable_balance", "receivable_balance", "charity_coins", "trust_score"
            )
        }
        assert actual == self.model

    @invariant()
    def states_match_the_model(self) -> None:
        assert dict(Escrow.objects.values_list("pk", "status")) == {
            pk: "released" if e.released else "holding" for pk, e in self.escrows.items()
        }
        assert dict(Match.objects.values_list("pk", "status")) == {
            pk: m.status for pk, m in self.matches.items()
        }
        assert {
            pk: (status, due_at, reminded_at is not None)
            for pk, status, due_at, reminded_at in DonationCycle.objects.values_list(
                "pk", "status", "due_at", "reminded_at"
            )
        } == {pk: (c.status, c.due_at, c.reminded) for pk, c in self.cycles.items()}
        assert {
            pk: (expires_at, status)
            for pk, expires_at, status in Boost.objects.values_list("pk", "expires_at", "status")
        } == self.boosts

    @invariant()
    def pools_match_the_model(self) -> None:
        winners = {w.user_id: w.pk for w in self.wallets}
        held = dict(SystemAccount.objects.values_list("code", "balance"))
        assert {
            pk: (amount, status, winners.get(winner), held.get(pool_account(pk), 0))
            for pk, amount, status, winner in PrizePool.objects.values_list(
                "pk", "amount", "status", "winner"
            )
        } == {pk: (p.amount, p.status, p.winner, p.held) for pk, p in self.pools.items()}


def test_ledger_services_keep_the_model_and_the_invariants_under_random_sequences():
    run_state_machine_as_test(
        LedgerMachine,
        settings=hypothesis_settings(
            max_examples=60,
            database=None,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
