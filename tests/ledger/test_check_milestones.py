"""check_milestones: each user's milestones (fulfilled cycles, coins held) recorded once, with
a notification and the optional coin bonus in the same transaction; targeted and dry runs;
the parameters of the check that follows a release."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.urls import reverse

from jobs.models import JobRun
from jobs.params import params_validate
from jobs.registry import get_job
from ledger.jobs import milestones as milestone_jobs
from ledger.jobs.milestones import milestones_after_release
from ledger.models import (
    Asset,
    BalanceSnapshot,
    Milestone,
    Notification,
    SystemAccount,
    Transfer,
    TransferKind,
    TransferSubject,
    Wallet,
)
from ledger.services.escrows import escrows_release_due
from ledger.services.milestones import milestones_check
from ledger.services.transfers import COIN_ISSUANCE, TransferLine, transfers_book, wallet_account
from tests.factories import HOLD, WalletFactory, donation_at, funded_wallet
from tests.invariants import assert_ledger_consistent
from tests.leaderboard import test_update_leaderboard_sqlite as sqlite_suite
from tests.leaderboard.factories import finished_run, fulfilled_cycle
from tests.ledger.helpers import ledger_snapshot, run_job

pytestmark = pytest.mark.django_db

AS_OF = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)


def with_fulfilled_cycles(wallet: Wallet, count: int) -> Wallet:
    for day in range(count):
        fulfilled_cycle(
            wallet=wallet,
            donor=funded_wallet(),
            obligated_at=AS_OF - timedelta(days=40 - day),
            days=1,
        )
    return wallet


def give_coins(wallet: Wallet, amount: int) -> None:
    with transaction.atomic():
        transfers_book(
            lines=[
                TransferLine(
                    reference=f"test-coins:{wallet.pk}:{amount}",
                    kind=TransferKind.COIN_AWARD,
                    asset=Asset.COINS,
                    amount=amount,
                    debit_account=COIN_ISSUANCE,
                    credit_account=wallet_account(wallet.pk, "coins"),
                )
            ]
        )


@pytest.fixture
def users():
    """`five`: 5 fulfilled cycles and 1,200 coins; `one`: one fulfilled cycle; `none`: nothing
    reached (a few coins)."""
    five = with_fulfilled_cycles(WalletFactory(), 5)
    give_coins(five, 1_200)
    one = with_fulfilled_cycles(WalletFactory(), 1)
    none = WalletFactory()
    give_coins(none, 499)
    return {"five": five, "one": one, "none": none}


def _milestones() -> set[tuple[int, str, int]]:
    return set(Milestone.objects.values_list("user_id", "kind", "threshold"))


def test_a_check_records_each_reached_milestone_once_with_a_notification(users):
    five, one = users["five"], users["one"]

    # when the daily check runs
    run = run_job("check_milestones", as_of=AS_OF)

    # then each milestone reached has one row, naming the run and what the user had
    assert run.status == "succeeded", run.error
    assert _milestones() == {
        (five.user_id, "cycles_fulfilled", 1),
        (five.user_id, "cycles_fulfilled", 5),
        (five.user_id, "coins_held", 500),
        (five.user_id, "coins_held", 1_000),
        (one.user_id, "cycles_fulfilled", 1),
    }
    assert set(Milestone.objects.values_list("job_run_id", flat=True)) == {run.pk}
    assert Milestone.objects.get(user=five.user, kind="coins_held", threshold=1_000).value == 1_200
    assert Milestone.objects.get(user=five.user, kind="cycles_fulfilled", threshold=5).value == 5
    # and one push notification each, keyed by the milestone
    notifications = Notification.objects.filter(kind="milestone_reached")
    assert sorted(notifications.values_list("dedupe_key", flat=True)) == sorted(
        f"milestone:{kind}:{threshold}:{user}" for user, kind, threshold in _milestones()
    )
    assert set(notifications.values_list("channel", flat=True)) == {"push"}
    milestone = Milestone.objects.get(user=one.user)
    assert notifications.get(user=one.user).payload == {
        "milestone_id": milestone.pk,
        "kind": "cycles_fulfilled",
        "threshold": 1,
        "value": 1,
        "bonus_coins": 0,
    }
    # and the summary counts them, per kind and threshold, without a bonus by default
    assert run.summary["users_checked"] == Wallet.objects.count()
    assert run.summary["milestones_reached"] == 5
    assert run.summary["milestones_by_kind"] == {
        "coins_held:1000": 1,
        "coins_held:500": 1,
        "cycles_fulfilled:1": 2,
        "cycles_fulfilled:5": 1,
    }
    assert run.summary["notifications_queued"] == 5
    assert run.summary["bonus_coins_booked"] == 0
    assert not Transfer.objects.filter(kind=TransferKind.MILESTONE_BONUS).exists()


def test_a_second_check_records_nothing_again_until_a_new_milestone_is_reached(users):
    run_job("check_milestones", as_of=AS_OF)
    before = ledger_snapshot(), _milestones()

    again = run_job("check_milestones", as_of=AS_OF + timedelta(days=1))

    assert again.summary["milestones_reached"] == 0
    assert (ledger_snapshot(), _milestones()) == before

    # when the user with 1,200 coins reaches 5,000
    give_coins(users["five"], 3_800)
    later = run_job("check_milestones", as_of=AS_OF + timedelta(days=2))

    assert later.summary["milestones_by_kind"] == {"coins_held:5000": 1}
    assert Notification.objects.filter(kind="milestone_reached").count() == 6


def test_the_bonus_is_booked_per_milestone_from_coin_issuance(users, settings):
    settings.MILESTONE_BONUS_COINS = 25
    five = users["five"]
    coins_before = Wallet.objects.get(pk=five.pk).charity_coins
    issuance_before = SystemAccount.objects.get(code=COIN_ISSUANCE).balance

    run = run_job("check_milestones", as_of=AS_OF)

    # then each milestone has one bonus transfer naming it, into its user's coins
    bonuses = Transfer.objects.filter(kind=TransferKind.MILESTONE_BONUS)
    milestones = {milestone.pk: milestone for milestone in Milestone.objects.all()}
    assert sorted(bonuses.values_list("reference", flat=True)) == sorted(
        f"milestone-bonus:{pk}" for pk in milestones
    )
    for bonus in bonuses:
        milestone = milestones[bonus.subject_id]
        assert bonus.subject_type == TransferSubject.MILESTONE
        assert (bonus.asset, bonus.amount, bonus.debit_account) == ("coins", 25, COIN_ISSUANCE)
        assert bonus.credit_account == wallet_account(milestone.user.wallet.pk, "coins")
        assert bonus.job_run_id == run.pk
        assert milestone.bonus_coins == 25
    # and the balances moved with them
    assert Wallet.objects.get(pk=five.pk).charity_coins == coins_before + 4 * 25
    assert SystemAccount.objects.get(code=COIN_ISSUANCE).balance == issuance_before - 5 * 25
    assert run.summary["bonus_coins_booked"] == 5 * 25
    notification = Notification.objects.get(user=users["one"].user, kind="milestone_reached")
    assert notification.payload["bonus_coins"] == 25
    assert_ledger_consistent()


def test_a_targeted_check_handles_only_its_users(users):
    one = users["one"]

    run = run_job("check_milestones", as_of=AS_OF, params={"user_ids": [one.user_id]})

    assert _milestones() == {(one.user_id, "cycles_fulfilled", 1)}
    assert run.summary["users_checked"] == 1
    assert run.summary["users_targeted"] == 1


def test_a_dry_run_reports_what_it_would_record_and_writes_nothing(users, settings):
    settings.MILESTONE_BONUS_COINS = 10
    before = ledger_snapshot()

    run = run_job("check_milestones", as_of=AS_OF, dry_run=True)

    assert run.summary["dry_run"] is True
    assert run.summary["milestones_reached"] == 5
    assert run.summary["milestones_by_kind"]["cycles_fulfilled:1"] == 2
    assert run.summary["bonus_coins_booked"] == 50
    assert ledger_snapshot() == before
    assert not Milestone.objects.exists()


def test_small_batches_reach_every_user_and_report_progress(users):
    progress: list[int] = []

    summary = milestones_check(batch_size=2, on_progress=progress.append)

    assert summary["milestones_reached"] == 5
    assert summary["users_checked"] == Wallet.objects.count()
    assert summary["batches"] == len(progress) > 2
    assert progress == sorted(progress) and progress[-1] == Wallet.objects.count()


def test_the_job_is_registered_daily_with_targets():
    spec = get_job("check_milestones")

    assert spec.cron == "30 0 * * *"
    assert spec.concurrent_targets is True
    assert params_validate(spec, {"user_ids": [3, 1, 3]}) == {"user_ids": [1, 3]}


# --- The check that follows a release -----------------------------------------------------------


def _release(*, job_run: JobRun, count: int) -> list[Wallet]:
    """Release `count` new due escrows under `job_run`; their donors and recipients."""
    donations = [donation_at(at=AS_OF - HOLD - timedelta(minutes=1)) for _ in range(count)]
    escrows_release_due(as_of=AS_OF, job_run=job_run)
    return [wallet for donation in donations for wallet in (donation.donor, donation.recipient)]


def _release_run(**fields) -> JobRun:
    return finished_run(job="release_escrows", status="succeeded", finished_at=AS_OF, **fields)


def test_a_release_is_followed_by_a_check_of_its_donors_and_recipients():
    earlier = _release_run(summary={"escrows_released": 1})
    _release(job_run=earlier, count=1)
    run = _release_run()
    wallets = _release(job_run=run, count=2)
    run.summary = {"escrows_released": 2}

    assert milestones_after_release(run) == {
        "user_ids": sorted(wallet.user_id for wallet in wallets)
    }


def test_a_fanned_out_release_follows_up_with_the_users_of_every_shard():
    parent = _release_run(summary={"escrows_released": 2})
    wallets = [
        *_release(job_run=_release_run(parent=parent, shard={"index": 0}), count=1),
        *_release(job_run=_release_run(parent=parent, shard={"index": 1}), count=1),
    ]

    assert milestones_after_release(parent) == {
        "user_ids": sorted(wallet.user_id for wallet in wallets)
    }


def test_a_release_that_released_nothing_has_no_follow_up():
    assert milestones_after_release(_release_run(summary={"escrows_released": 0})) is None


def test_a_release_of_more_users_than_a_targeted_run_takes_follows_up_with_a_full_sweep(
    monkeypatch,
):
    monkeypatch.setattr(milestone_jobs, "MAX_IDS", 3)
    run = _release_run(summary={"escrows_released": 2})
    _release(job_run=run, count=2)

    assert milestones_after_release(run) == {}


def test_the_release_declares_the_milestone_check_as_its_follow_up():
    (follow_up,) = get_job("release_escrows").follow_ups

    assert follow_up.job == "check_milestones"
    assert follow_up.params is milestones_after_release


# --- SQLite, the default database of `make run` -------------------------------------------------


# A fresh, migrated SQLite database per test, as the leaderboard's SQLite tests have it.
migrated_sqlite = sqlite_suite.migrated_sqlite
sqlite_database = sqlite_suite.sqlite_database


def _sqlite_manage(database: Path, *args: str, **env: str) -> str:
    completed = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=django_settings.BASE_DIR,
        env={
            **os.environ,
            "DATABASE_URL": f"sqlite:///{database}",
            "REDIS_URL": django_settings.REDIS_URL,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, (args, completed.stdout[-3000:], completed.stderr[-3000:])
    return completed.stdout


def _sqlite_check(database: Path) -> dict:
    out = _sqlite_manage(
        database, "runjob", "check_milestones", "--json", MILESTONE_BONUS_COINS="5"
    )
    return json.loads(out.strip().splitlines()[-1])


def test_on_sqlite_a_check_records_each_milestone_once_with_its_bonus(sqlite_database):
    # given the demo data, with fulfilled cycles, on SQLite
    _sqlite_manage(sqlite_database, "seed_demo", "--if-empty")

    # when the check runs twice
    first, second = _sqlite_check(sqlite_database), _sqlite_check(sqlite_database)

    # then the first recorded milestones and booked their bonus, the second nothing
    reached = first["summary"]["milestones_reached"]
    assert first["status"] == "succeeded" and reached > 0, first
    assert first["summary"]["notifications_queued"] == reached
    assert first["summary"]["bonus_coins_booked"] == 5 * reached
    assert second["summary"]["milestones_reached"] == 0
    rows = json.loads(_sqlite_manage(sqlite_database, "dumpdata", "ledger.milestone"))
    assert len(rows) == reached
    assert (
        len(
            {
                (row["fields"]["user"], row["fields"]["kind"], row["fields"]["threshold"])
                for row in rows
            }
        )
        == reached
    )


# --- The admin ----------------------------------------------------------------------------------


def test_the_admin_shows_milestones_read_only_with_their_run(users, admin_client, settings):
    settings.MILESTONE_BONUS_COINS = 25
    run = run_job("check_milestones", as_of=AS_OF)
    milestone = Milestone.objects.get(user=users["five"].user, threshold=1_000)

    listing = admin_client.get(reverse("admin:ledger_milestone_changelist")).content.decode()
    page = admin_client.get(reverse("admin:ledger_milestone_change", args=[milestone.pk]))

    assert "1,000 Charity Coins held" in listing
    assert "25 coins" in listing
    run_url = reverse("admin:jobs_jobrun_change", args=[run.pk])
    assert f'<a href="{run_url}">run #{run.pk}</a>' in listing
    assert page.status_code == 200
    assert 'name="threshold"' not in page.content.decode()  # shown, not editable
    assert admin_client.post(reverse("admin:ledger_milestone_add")).status_code == 403
    delete = reverse("admin:ledger_milestone_delete", args=[milestone.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert Milestone.objects.filter(pk=milestone.pk).exists()


def test_the_admin_shows_balance_snapshots_read_only_with_money_and_their_run(admin_client):
    run = finished_run(job="snapshot_balances", status="succeeded", finished_at=AS_OF)
    snapshot = BalanceSnapshot.objects.create(
        day=AS_OF.date(),
        taken_at=AS_OF,
        wallets=3,
        accounts=2,
        total_spendable=123_456,
        total_receivable=1_000,
        pools_money=44,
        total_coins=1_500,
        job_run=run,
    )

    listing = admin_client.get(reverse("admin:ledger_balancesnapshot_changelist")).content.decode()
    page = admin_client.get(reverse("admin:ledger_balancesnapshot_change", args=[snapshot.pk]))

    assert "₦1,234.56" in listing and "₦10.00" in listing and "₦1,245.00" in listing
    assert "1,500 coins" in listing
    assert f"run #{run.pk}" in listing
    assert page.status_code == 200
    assert 'name="wallets"' not in page.content.decode()
    assert admin_client.post(reverse("admin:ledger_balancesnapshot_add")).status_code == 403
