"""update_leaderboard: the score formula and ranking on a small hand-computed table."""

from datetime import timedelta
from decimal import Decimal

import pytest

from leaderboard.models import Boost, BoostKind, BoostStatus, LeaderboardEntry
from leaderboard.services.standings import leaderboard_recompute
from ledger.models import Wallet
from tests.factories import WalletFactory, funded_wallet
from tests.leaderboard.factories import (
    MONDAY,
    BoostFactory,
    LeaderboardEntryFactory,
    fulfilled_cycle,
)
from tests.ledger.helpers import run_job

AS_OF = MONDAY
COUNTS = ("boosts_expired", "users_ranked", "entries_created", "entries_updated", "entries_removed")


def _boost(wallet: Wallet, kind: str, value: str, **times) -> Boost:
    return BoostFactory(user=wallet.user, kind=kind, value=Decimal(value), **times)


@pytest.fixture
def table():
    """Six active users whose scores are worked out by hand below, an inactive user with a
    stale entry, and an inactive donor who funds everybody's cycles."""
    donor = funded_wallet()
    donor.user.is_active = False
    donor.user.save()
    users = {name: WalletFactory() for name in ("a", "f", "b", "c", "e", "d")}
    inactive = WalletFactory(user__is_active=False)

    def cycles(wallet: Wallet, *days) -> None:
        for n, day in enumerate(days):
            obligated = AS_OF - timedelta(days=60 - n)
            fulfilled_cycle(wallet=wallet, donor=donor, obligated_at=obligated, days=day)

    # a: 2 cycles in 4 and 6 days, avg 5: 200 + 10 × 25 = 450; × 1.5 × 2 + 25 = 1375.00.
    # Its 3× multiplier ends exactly at as_of, so it is expired and does not count, and a
    # cycle fulfilled after as_of does not count either.
    cycles(users["a"], 4, 6)
    _boost(users["a"], BoostKind.MULTIPLIER, "1.50")
    _boost(users["a"], BoostKind.MULTIPLIER, "2.00")
    _boost(users["a"], BoostKind.POINTS, "25")
    _boost(users["a"], BoostKind.MULTIPLIER, "3.00", expires_at=AS_OF)
    fulfilled_cycle(wallet=users["a"], donor=donor, obligated_at=AS_OF - timedelta(days=1), days=2)
    # f: 3 cycles in 1, 2 and 2.5 days, avg 1.8333 → 1.83: 300 + 10 × 28.17 = 581.70;
    # × 1.10 = 639.87.
    cycles(users["f"], 1, 2, Decimal("2.5"))
    _boost(users["f"], BoostKind.MULTIPLIER, "1.10")
    # b: 1 cycle in 40 days: 100 + 10 × max(0, −10) = 100; + 10.50 = 110.50.
    cycles(users["b"], 40)
    _boost(users["b"], BoostKind.POINTS, "10.50")
    # c: no cycle, so no speed term: 0 × 2 + 110.50 = 110.50, tied with b (lower id wins).
    _boost(users["c"], BoostKind.MULTIPLIER, "2.00")
    _boost(users["c"], BoostKind.POINTS, "110.50")
    # e: 1 cycle in 30 days: 100; its 500 points only start after as_of.
    cycles(users["e"], 30)
    _boost(
        users["e"],
        BoostKind.POINTS,
        "500",
        starts_at=AS_OF + timedelta(days=30),
        expires_at=AS_OF + timedelta(days=40),
    )
    # d: nothing at all: 0.
    cycles(inactive, 3)
    LeaderboardEntryFactory(user=inactive.user, rank=1, score=Decimal("999"))
    return users, inactive


EXPECTED = [
    # name, rank, score, cycles completed, average days
    ("a", 1, Decimal("1375.00"), 2, Decimal("5.00")),
    ("f", 2, Decimal("639.87"), 3, Decimal("1.83")),
    ("b", 3, Decimal("110.50"), 1, Decimal("40.00")),
    ("c", 4, Decimal("110.50"), 0, None),
    ("e", 5, Decimal("100.00"), 1, Decimal("30.00")),
    ("d", 6, Decimal("0.00"), 0, None),
]


def _standings(users: dict[str, Wallet]) -> list[tuple]:
    names = {wallet.user_id: name for name, wallet in users.items()}
    return [
        (names[e.user_id], e.rank, e.score, e.cycles_completed, e.average_completion_days)
        for e in LeaderboardEntry.objects.order_by("rank")
    ]


@pytest.mark.django_db
def test_scores_and_ranks_match_the_hand_computed_table(table):
    # given the hand-computed table
    users, inactive = table
    assert users["b"].user_id < users["c"].user_id

    # when the leaderboard is updated as of Monday midnight
    run = run_job("update_leaderboard", as_of=AS_OF)

    # then every active user has the expected score and rank, ties broken by user id
    assert run.status == "succeeded", run.error
    assert _standings(users) == EXPECTED
    # and the inactive user's stale entry is gone, the donor was never ranked
    assert not LeaderboardEntry.objects.filter(user=inactive.user).exists()
    # and only the boost that ran out is expired
    assert [b.value for b in Boost.objects.filter(status=BoostStatus.EXPIRED)] == [Decimal("3.00")]
    assert run.summary == {
        "boosts_expired": 1,
        "users_ranked": 6,
        "entries_created": 6,
        "entries_updated": 0,
        "entries_removed": 1,
        "top_user_ids": [users[name].user_id for name, *_ in EXPECTED],
    }


@pytest.mark.django_db
def test_a_second_run_rewrites_nothing_and_a_change_moves_only_what_it_must(table):
    # given a leaderboard computed once
    users, _inactive = table
    run_job("update_leaderboard", as_of=AS_OF)
    stamps = dict(LeaderboardEntry.objects.values_list("user_id", "updated_at"))

    # when it runs again with nothing changed
    again = run_job("update_leaderboard", as_of=AS_OF)

    # then no entry is written
    assert {k: again.summary[k] for k in COUNTS} == {
        "boosts_expired": 0,
        "users_ranked": 6,
        "entries_created": 0,
        "entries_updated": 0,
        "entries_removed": 0,
    }
    assert dict(LeaderboardEntry.objects.values_list("user_id", "updated_at")) == stamps

    # when d earns a points boost that lifts it above e, and the run is later that day
    _boost(users["d"], BoostKind.POINTS, "105")
    later = run_job("update_leaderboard", as_of=AS_OF + timedelta(hours=12))

    # then d and e swap places and nobody else is rewritten
    assert later.summary["entries_updated"] == 2
    assert [row[0] for row in _standings(users)] == ["a", "f", "b", "c", "d", "e"]


@pytest.mark.django_db
def test_dry_run_changes_nothing_and_predicts_the_real_run(table):
    # given the hand-computed table
    users, _inactive = table
    before = list(LeaderboardEntry.objects.order_by("pk").values())
    boosts_before = list(Boost.objects.order_by("pk").values())

    # when a dry run goes first
    dry = run_job("update_leaderboard", as_of=AS_OF, dry_run=True)

    # then nothing changed
    assert dry.status == "succeeded", dry.error
    assert list(LeaderboardEntry.objects.order_by("pk").values()) == before
    assert list(Boost.objects.order_by("pk").values()) == boosts_before

    # and the real run makes exactly the predicted counts
    real = run_job("update_leaderboard", as_of=AS_OF)
    assert dry.summary["dry_run"] is True
    assert {k: dry.summary[k] for k in COUNTS} == {k: real.summary[k] for k in COUNTS}
    assert dry.summary["top_user_ids"] == real.summary["top_user_ids"]


@pytest.mark.django_db
def test_featured_flags_survive_a_recompute(table):
    # given a featured user on the computed leaderboard
    users, _inactive = table
    leaderboard_recompute(as_of=AS_OF)
    LeaderboardEntry.objects.filter(user=users["e"].user).update(
        featured=True, featured_week="2026-W10"
    )

    # when scores are recomputed
    leaderboard_recompute(as_of=AS_OF + timedelta(hours=1))

    # then the flag is still there
    entry = LeaderboardEntry.objects.get(user=users["e"].user)
    assert (entry.featured, entry.featured_week) == (True, "2026-W10")


@pytest.mark.django_db
def test_a_boost_stops_counting_at_its_expiry_even_before_it_is_marked_expired():
    # given a user with a points boost that ends exactly at as_of, still marked active
    wallet = WalletFactory()
    boost = _boost(wallet, BoostKind.POINTS, "40", expires_at=AS_OF)

    # when scores are recomputed without the expiry sweep, a microsecond before and at as_of
    leaderboard_recompute(as_of=AS_OF - timedelta(microseconds=1))
    before = LeaderboardEntry.objects.get(user=wallet.user).score
    leaderboard_recompute(as_of=AS_OF)

    # then it counted until its expiry and not from it on
    boost.refresh_from_db()
    assert boost.status == BoostStatus.ACTIVE
    assert (before, LeaderboardEntry.objects.get(user=wallet.user).score) == (
        Decimal("40.00"),
        Decimal("0.00"),
    )
