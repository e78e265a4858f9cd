"""`manage.py seed_demo` and the demo data service: bad input, reseeding, determinism, work due
for every ledger job, and a calm first start."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from ledger.models import (
    Donation,
    DonationCycle,
    Escrow,
    Match,
    Notification,
    SystemAccount,
    Transfer,
    Wallet,
)
from ledger.services.cycles import cycles_overdue, cycles_to_remind
from ledger.services.demo import DemoPlan, demo_seed
from ledger.services.escrows import escrows_due
from ledger.services.matches import matches_due
from ledger.statuses import CycleStatus, EscrowStatus, MatchStatus
from tests.ledger.helpers import run_job
from tests.workers import manage_py

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
BAD_USERS = [
    pytest.param("0", "--users must be between 2 and 2,000,000, got 0", id="zero"),
    pytest.param("-5", "--users must be between 2 and 2,000,000, got -5", id="negative"),
    pytest.param("abc", "argument --users: invalid int value: 'abc'", id="not-a-number"),
]


def _seed_demo(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def _row_counts() -> dict[str, int]:
    models = (get_user_model(), Wallet, Donation, Escrow, DonationCycle, Match, Transfer)
    return {model._meta.label: model.objects.count() for model in models}


def _delete_ledger() -> None:
    for model in (
        Notification,
        Transfer,
        Escrow,
        DonationCycle,
        Donation,
        Match,
        Wallet,
        SystemAccount,
    ):
        model.objects.all().delete()
    get_user_model().objects.all().delete()


def _fingerprint() -> dict[str, list[tuple]]:
    """Everything the demo data is made of, with database ids replaced by creation order."""
    wallet_ids = list(Wallet.objects.order_by("pk").values_list("pk", flat=True))
    index = {pk: i for i, pk in enumerate(wallet_ids)}
    return {
        "wallets": [
            (name, spendable, receivable, coins, str(trust))
            for name, spendable, receivable, coins, trust in Wallet.objects.order_by(
                "pk"
            ).values_list(
                "user__username",
                "spendable_balance",
                "receivable_balance",
                "charity_coins",
                "trust_score",
            )
        ],
        "donations": [
            (ref, index[donor], index[recipient], amount, created)
            for ref, donor, recipient, amount, created in Donation.objects.order_by(
                "pk"
            ).values_list("reference", "donor_id", "recipient_id", "amount", "created_at")
        ],
        "escrows": list(
            Escrow.objects.order_by("pk").values_list(
                "status", "amount", "created_at", "hold_until", "released_at"
            )
        ),
        "cycles": [
            (index[wallet], *rest)
            for wallet, *rest in DonationCycle.objects.order_by("pk").values_list(
                "wallet_id", "status", "amount", "obligated_at", "due_at", "fulfilled_at"
            )
        ],
        "matches": [
            (index[donor], index[recipient], *rest)
            for donor, recipient, *rest in Match.objects.order_by("pk").values_list(
                "donor_id", "recipient_id", "amount", "created_at", "expires_at"
            )
        ],
        "transfers": sorted(Transfer.objects.values_list("kind", "asset", "amount").order_by()),
    }


@pytest.mark.django_db
@pytest.mark.parametrize(("users", "message"), BAD_USERS)
def test_bad_user_count_is_a_command_error_and_writes_nothing(users, message):
    # given an empty database
    before = _row_counts()

    # when seed_demo is asked for a bad number of users
    with pytest.raises(CommandError) as error:
        _seed_demo("--users", users)

    # then the error says so and nothing was written
    assert message in str(error.value)
    assert _row_counts() == before


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("users", "message"), BAD_USERS)
def test_bad_user_count_from_the_command_line_exits_non_zero_without_a_traceback(users, message):
    # given an empty database
    # when seed_demo runs as a process with a bad number of users
    result = manage_py("seed_demo", "--users", users)

    # then it exits non-zero with the message on the last line and no traceback
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert message in result.stderr.strip().splitlines()[-1], result.stderr
    assert Wallet.objects.count() == 0


@pytest.mark.django_db
def test_seeding_the_same_seed_twice_is_refused_without_writing():
    # given demo data for seed 5
    _seed_demo("--users", "20", "--seed", "5")
    before = _row_counts()
    assert before["ledger.Wallet"] == 20

    # when the same seed is seeded again
    with pytest.raises(CommandError) as error:
        _seed_demo("--users", "20", "--seed", "5")

    # then the error says so and nothing more was written
    assert str(error.value) == "demo data for seed 5 already exists; pick another --seed"
    assert _row_counts() == before


@pytest.mark.django_db(transaction=True)
def test_seeding_the_same_seed_twice_from_the_command_line_is_one_line_of_error():
    # given demo data for seed 5, seeded by a first process
    first = manage_py("seed_demo", "--users", "20", "--seed", "5")
    assert first.returncode == 0, first.stderr
    before = _row_counts()

    # when a second process seeds the same seed
    second = manage_py("seed_demo", "--users", "20", "--seed", "5")

    # then it fails with one line on stderr and writes nothing
    assert second.returncode != 0
    assert second.stderr.strip() == (
        "CommandError: demo data for seed 5 already exists; pick another --seed"
    )
    assert _row_counts() == before


@pytest.mark.django_db
def test_if_empty_does_nothing_when_wallets_exist():
    # given existing demo data
    _seed_demo("--users", "10", "--seed", "3")
    before = _row_counts()

    # when seeding with --if-empty and another seed
    output = _seed_demo("--users", "10", "--seed", "4", "--if-empty")

    # then nothing is written
    assert "not seeding" in output
    assert _row_counts() == before


@pytest.mark.django_db
def test_the_same_seed_gives_the_same_data():
    # given the demo data of seed 11 at a fixed time
    plan = DemoPlan(users=120, seed=11)
    first_summary = demo_seed(plan=plan, now=NOW)
    first = _fingerprint()

    # when everything is deleted and the same seed is seeded again
    _delete_ledger()
    second_summary = demo_seed(plan=plan, now=NOW)

    # then every amount, time and relation is the same
    assert second_summary == first_summary
    assert _fingerprint() == first

    # and another seed gives different amounts
    _delete_ledger()
    demo_seed(plan=DemoPlan(users=120, seed=12), now=NOW)
    other = _fingerprint()
    assert [row[1:] for row in other["wallets"]] != [row[1:] for row in first["wallets"]]
    assert other["transfers"] != first["transfers"]


@pytest.mark.django_db
def test_each_of_two_seeds_has_work_due_for_every_ledger_job():
    # given the default amount of demo data for two seeds, in one database
    _seed_demo("--seed", "42")
    _seed_demo("--seed", "2026")
    now = timezone.now()
    assert Wallet.objects.count() == 400

    for seed in (42, 2026):
        # when looking at one seed's data
        users = {"user__username__startswith": f"demo-{seed}-"}
        escrows = Escrow.objects.filter(**{f"recipient__{k}": v for k, v in users.items()})
        matches = Match.objects.filter(**{f"donor__{k}": v for k, v in users.items()})
        cycles = DonationCycle.objects.filter(**{f"wallet__{k}": v for k, v in users.items()})

        # then each job has work due, next to work that is not due yet; escrows come due
        # within the hour instead of being overdue already, which would raise a lag alert
        assert not escrows_due(as_of=now).filter(pk__in=escrows).exists(), seed
        in_an_hour = now + timedelta(hours=1)
        assert escrows_due(as_of=in_an_hour).filter(pk__in=escrows).exists(), seed
        assert escrows.filter(status=EscrowStatus.HOLDING, hold_until__gt=now).exists(), seed
        assert matches_due(as_of=now).filter(pk__in=matches).exists(), seed
        assert matches.filter(status=MatchStatus.PENDING, expires_at__gt=now).exists(), seed
        assert cycles_to_remind(as_of=now).filter(pk__in=cycles).exists(), seed
        assert cycles_overdue(as_of=now).filter(pk__in=cycles).exists(), seed
        assert cycles.filter(
            status=CycleStatus.OBLIGATED, due_at__gt=now + timedelta(days=7)
        ).exists(), seed


@pytest.mark.django_db
def test_a_first_start_raises_no_lag_alert_and_the_hourly_release_has_work():
    # given the default demo data, as `make run` seeds it
    _seed_demo()
    now = timezone.now()

    # when the lag monitor runs at once and an hour later, just before the hourly release
    at_start = run_job("monitor_business_lag", as_of=now).summary
    before_release = run_job("monitor_business_lag", as_of=now + timedelta(hours=1)).summary
    release = run_job("release_escrows", as_of=now + timedelta(hours=1)).summary

    # then nothing is overdue at first, nothing waits long enough to alert, and the release
    # has escrows to release
    assert at_start["overdue_count"] == 0
    assert before_release["overdue_count"] > 0
    assert before_release["oldest_overdue_seconds"] <= 3600
    assert not at_start["alerted"] and not before_release["alerted"]
    assert release["escrows_released"] == before_release["overdue_count"]
