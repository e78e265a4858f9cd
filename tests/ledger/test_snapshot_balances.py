"""snapshot_balances: one row per wallet and system account per day, idempotent per day, old
days deleted, a dry run that writes nothing; the reconciliation against the latest snapshot
(tampered rows caught, bookings during the snapshot not mistaken for differences); the
money-held trend drawn from the snapshots."""

import logging
import threading
from datetime import datetime, timedelta

import pytest
from django.db import connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from jobs.models import RunStatus
from jobs.panels import Trend
from ledger.models import (
    AccountSnapshot,
    Asset,
    BalanceSnapshot,
    SystemAccount,
    TransferKind,
    Wallet,
    WalletSnapshot,
)
from ledger.selectors import money_held_trend, money_text
from ledger.services.demo import DemoPlan, demo_seed
from ledger.services.transfers import EXTERNAL_MONEY, TransferLine, transfers_book, wallet_account
from tests.factories import funded_wallet
from tests.ledger.helpers import run_job

AS_OF = timezone.make_aware(datetime(2026, 12, 1, 0, 5))
SNAPSHOT_CHECK = "balances_equal_snapshot_plus_later_transfers"


@pytest.fixture
def ledger(db):
    demo_seed(plan=DemoPlan(users=40, seed=5))
    run_job("release_escrows", as_of=timezone.now())


def check(run, name):
    return next(item for item in run.summary["checks"] if item["check"] == name)


def failing(run) -> set[str]:
    return {item["check"] for item in run.summary["checks"] if not item["ok"]}


def deposit(wallet_id: int, amount: int, reference: str) -> None:
    transfers_book(
        lines=[
            TransferLine(
                f"deposit:{reference}",
                TransferKind.DEPOSIT,
                Asset.MONEY,
                amount,
                EXTERNAL_MONEY,
                wallet_account(wallet_id, "spendable"),
            )
        ]
    )


@pytest.mark.django_db
def test_a_snapshot_has_a_row_per_wallet_and_account_and_the_days_totals(ledger, caplog):
    caplog.set_level(logging.INFO)

    run = run_job("snapshot_balances", as_of=AS_OF)

    assert run.status == RunStatus.SUCCEEDED
    snapshot = BalanceSnapshot.objects.get()
    assert snapshot.day == AS_OF.date()
    assert snapshot.job_run_id == run.pk
    rows = WalletSnapshot.objects.filter(snapshot=snapshot)
    assert set(rows.values_list("wallet_id", "spendable_balance", "charity_coins")) == set(
        Wallet.objects.values_list("pk", "spendable_balance", "charity_coins")
    )
    assert set(
        AccountSnapshot.objects.filter(snapshot=snapshot).values_list("account_id", "balance")
    ) == set(SystemAccount.objects.values_list("pk", "balance"))
    wallets = Wallet.objects.aggregate(
        spendable=Sum("spendable_balance"),
        receivable=Sum("receivable_balance"),
        coins=Sum("charity_coins"),
    )
    pools = (
        SystemAccount.objects.filter(allow_negative=False, asset=Asset.MONEY).aggregate(
            total=Sum("balance")
        )["total"]
        or 0
    )
    assert (
        snapshot.wallets,
        snapshot.accounts,
        snapshot.total_spendable,
        snapshot.total_receivable,
        snapshot.total_coins,
        snapshot.pools_money,
    ) == (
        Wallet.objects.count(),
        SystemAccount.objects.count(),
        wallets["spendable"],
        wallets["receivable"],
        wallets["coins"],
        pools,
    )
    assert run.summary["wallets_snapshotted"] == Wallet.objects.count()
    assert run.summary["money_held"] == snapshot.money_held > 0
    lines = [record.getMessage() for record in caplog.records]
    prefix = f"[snapshot_balances #{run.pk}]"
    assert f"{prefix} Taking the balance snapshot of 2026-12-01" in lines
    assert (
        f"{prefix} Balance snapshot of 2026-12-01 completed: {Wallet.objects.count()} wallets "
        f"and {SystemAccount.objects.count()} accounts snapshotted, "
        f"{money_text(snapshot.money_held)} held"
    ) in lines


@pytest.mark.django_db
def test_a_second_run_the_same_day_changes_nothing_and_says_so(ledger, caplog):
    first = run_job("snapshot_balances", as_of=AS_OF)
    rows = list(WalletSnapshot.objects.order_by("pk").values())
    deposit(Wallet.objects.order_by("pk").first().pk, 700, "after-the-first")
    caplog.set_level(logging.INFO)

    again = run_job("snapshot_balances", as_of=AS_OF + timedelta(hours=20))

    assert again.status == RunStatus.SUCCEEDED
    assert again.summary["already_taken"] is True
    assert BalanceSnapshot.objects.get().job_run_id == first.pk
    assert list(WalletSnapshot.objects.order_by("pk").values()) == rows
    lines = [record.getMessage() for record in caplog.records]
    assert f"[snapshot_balances #{again.pk}] Snapshot of 2026-12-01 already taken" in lines
    # and the next day has its own snapshot
    run_job("snapshot_balances", as_of=AS_OF + timedelta(days=1))
    assert list(BalanceSnapshot.objects.order_by("day").values_list("day", flat=True)) == [
        AS_OF.date(),
        AS_OF.date() + timedelta(days=1),
    ]


@pytest.mark.django_db
def test_a_dry_run_says_what_it_would_write_and_writes_nothing(ledger):
    run = run_job("snapshot_balances", as_of=AS_OF, dry_run=True)

    assert run.status == RunStatus.SUCCEEDED
    assert not BalanceSnapshot.objects.exists()
    assert not WalletSnapshot.objects.exists()
    assert run.summary["dry_run"] is True
    assert run.summary["wallets_to_snapshot"] == Wallet.objects.count()
    assert run.summary["accounts_to_snapshot"] == SystemAccount.objects.count()
    assert (
        run.summary["money_held"]
        == (
            Wallet.objects.aggregate(total=Sum(F("spendable_balance") + F("receivable_balance")))[
                "total"
            ]
        )
    )


@pytest.mark.django_db
def test_snapshots_past_their_retention_are_deleted_with_their_rows(ledger, settings):
    # given snapshots of 10, 4, 3 and 1 days ago, and a retention of 3 days
    settings.BALANCE_SNAPSHOT_RETENTION_DAYS = 3
    for days in (10, 4):
        run_job("snapshot_balances", as_of=AS_OF - timedelta(days=days))
    assert BalanceSnapshot.objects.count() == 1  # the 4-day-old one deleted the 10-day-old one
    run_job("snapshot_balances", as_of=AS_OF - timedelta(days=3))
    dry = run_job("snapshot_balances", as_of=AS_OF, dry_run=True)
    assert dry.summary["snapshots_to_delete"] == 1
    assert BalanceSnapshot.objects.count() == 2

    # when today's snapshot is taken
    run = run_job("snapshot_balances", as_of=AS_OF)

    # then everything older than 3 days is gone, its wallet and account rows too
    assert run.summary["snapshots_deleted"] == 1
    assert run.summary["days_deleted"] == [(AS_OF - timedelta(days=4)).date().isoformat()]
    kept = list(BalanceSnapshot.objects.order_by("day").values_list("day", flat=True))
    assert kept == [(AS_OF - timedelta(days=3)).date(), AS_OF.date()]
    assert set(WalletSnapshot.objects.values_list("snapshot__day", flat=True)) == set(kept)
    assert set(AccountSnapshot.objects.values_list("snapshot__day", flat=True)) == set(kept)
    assert run.summary["snapshot_rows_deleted"] == Wallet.objects.count() + (
        SystemAccount.objects.count()
    )


@pytest.mark.django_db
def test_without_a_snapshot_the_check_is_skipped_with_a_note(ledger):
    run = run_job("reconcile_ledger", as_of=timezone.now())

    assert run.summary["clean"] is True
    assert check(run, SNAPSHOT_CHECK)["note"] == "no balance snapshot yet"


@pytest.mark.django_db
def test_bookings_after_the_snapshot_and_a_new_wallet_reconcile(ledger):
    run_job("snapshot_balances", as_of=timezone.now())
    wallet = Wallet.objects.order_by("pk").first()
    with transaction.atomic():
        deposit(wallet.pk, 1_200, "after-the-snapshot")
    funded_wallet(5_000)  # a wallet the snapshot never saw counts from 0

    run = run_job("reconcile_ledger", as_of=timezone.now())

    assert run.status == RunStatus.SUCCEEDED
    assert failing(run) == set()
    assert check(run, SNAPSHOT_CHECK)["note"].startswith("snapshot of ")


@pytest.mark.django_db
def test_a_tampered_snapshot_row_is_caught(ledger):
    run_job("snapshot_balances", as_of=timezone.now())
    row = WalletSnapshot.objects.order_by("pk").first()
    WalletSnapshot.objects.filter(pk=row.pk).update(charity_coins=row.charity_coins + 5)

    run = run_job("reconcile_ledger", as_of=timezone.now())

    assert run.status == RunStatus.PARTIAL
    assert failing(run) == {SNAPSHOT_CHECK}
    wallet = Wallet.objects.get(pk=row.wallet_id)
    assert check(run, SNAPSHOT_CHECK)["sample"] == [
        {
            "account": f"wallet:{wallet.pk}:coins",
            "expected": wallet.charity_coins + 5,
            "actual": wallet.charity_coins,
        }
    ]


@pytest.mark.django_db
def test_a_tampered_cached_balance_is_caught_against_the_snapshot_too(ledger):
    run_job("snapshot_balances", as_of=timezone.now())
    account = SystemAccount.objects.get(code=EXTERNAL_MONEY)
    SystemAccount.objects.filter(pk=account.pk).update(balance=account.balance - 300)

    run = run_job("reconcile_ledger", as_of=timezone.now())

    assert run.status == RunStatus.PARTIAL
    assert {SNAPSHOT_CHECK, "cached_balances_equal_transfer_replay"} <= failing(run)
    assert check(run, SNAPSHOT_CHECK)["sample"] == [
        {"account": EXTERNAL_MONEY, "expected": account.balance, "actual": account.balance - 300}
    ]


@pytest.mark.django_db(transaction=True)
def test_bookings_while_the_snapshot_is_taken_are_no_difference(settings):
    # given many wallets, snapshotted in small batches so the snapshot takes a while
    demo_seed(plan=DemoPlan(users=600, seed=9))
    settings.STEWARD_BATCH_SIZE = 5
    wallet_ids = list(Wallet.objects.order_by("pk").values_list("pk", flat=True))
    done = threading.Event()
    booked: list[int] = []

    def book_until_done() -> None:
        # Each booking keeps its transaction open a moment, so some are in flight while the
        # snapshot starts and some commit while it runs.
        try:
            while not done.is_set():
                n = len(booked)
                with transaction.atomic():
                    deposit(wallet_ids[(n * 37) % len(wallet_ids)], 100 + n, f"during-{n}")
                    done.wait(0.003)
                booked.append(n)
        finally:
            connection.close()

    booker = threading.Thread(target=book_until_done)
    booker.start()
    try:
        while len(booked) < 3:
            done.wait(0.01)
        before = len(booked)
        # when the snapshot is taken while bookings go on
        snapshot = run_job("snapshot_balances", as_of=timezone.now())
        during = len(booked) - before
    finally:
        done.set()
        booker.join()

    # then the reconciliation finds no difference
    assert snapshot.status == RunStatus.SUCCEEDED, snapshot.error
    # taken on its own at REPEATABLE READ, naming the transactions it saw
    assert BalanceSnapshot.objects.get().seen_transactions
    assert during > 3, "the bookings did not overlap the snapshot"
    run = run_job("reconcile_ledger", as_of=timezone.now())
    assert failing(run) == set(), [c for c in run.summary["checks"] if not c["ok"]]
    assert check(run, SNAPSHOT_CHECK)["note"].startswith("snapshot of ")


@pytest.mark.django_db
def test_the_money_held_trend_has_a_point_a_day_from_the_snapshots():
    # given snapshots of today and of 3 days ago (and one too old for the chart)
    today = AS_OF.date()
    for days, spendable, receivable, pools in ((0, 900, 100, 50), (3, 400, 0, 0), (31, 1, 1, 1)):
        BalanceSnapshot.objects.create(
            day=today - timedelta(days=days),
            taken_at=AS_OF - timedelta(days=days),
            total_spendable=spendable,
            total_receivable=receivable,
            total_coins=77,
            pools_money=pools,
        )

    trend = money_held_trend(as_of=AS_OF)

    assert isinstance(trend, Trend)
    assert trend.money is True
    assert "snapshot_balances" in trend.note
    assert [point.day for point in trend.points] == [
        today - timedelta(days=29 - offset) for offset in range(30)
    ]
    values = {point.day: point.value for point in trend.points}
    assert values[today] == 1_050
    assert values[today - timedelta(days=3)] == 400
    assert sum(value is None for value in values.values()) == 28
