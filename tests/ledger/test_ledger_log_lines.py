"""The ledger jobs' own lines in their run's log, in the seed's words: a start line, the
per-item lines (the first few of a large batch, then a count) and a closing line."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from jobs.models import JobRun
from ledger.models import Escrow, Wallet
from ledger.services.escrows import LOGGED_ESCROWS
from ledger.services.milestones import LOGGED_MILESTONES
from tests.factories import (
    HOLD,
    WalletFactory,
    donation_at,
    funded_wallet,
    match_at,
    obligated_cycle,
)
from tests.leaderboard.factories import fulfilled_cycle
from tests.ledger.helpers import run_job

pytestmark = pytest.mark.django_db

AS_OF = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def own_lines(run: JobRun) -> list[str]:
    """The lines the job logged itself, without the run's prefix."""
    prefix = re.compile(rf"^\[{run.job} #{run.pk}\] ")
    (attempt,) = run.attempts.all()
    return [prefix.sub("", entry["line"]) for entry in attempt.log if prefix.match(entry["line"])]


def due_escrows(count: int) -> list[Escrow]:
    return [
        donation_at(at=AS_OF - HOLD - timedelta(minutes=minute + 1)).escrow
        for minute in range(count)
    ]


def test_release_escrows_logs_the_seed_lines_for_each_escrow():
    escrows = sorted(due_escrows(5), key=lambda escrow: escrow.pk)

    run = run_job("release_escrows", as_of=AS_OF)

    per_escrow = []
    for escrow in escrows:
        per_escrow += [
            f"Releasing escrow {escrow.pk} for transaction {escrow.donation.reference}",
            f"Escrow {escrow.pk} released successfully",
        ]
    assert escrows[0].donation.reference.startswith("TXN-")
    assert own_lines(run) == [
        "Starting escrow release job...",
        "Found 5 escrows ready for release",
        *per_escrow,
        "Progress: 5/5 escrows (100%)",
        "Escrow release job completed. Processed 5 escrows.",
    ]


def test_a_large_release_logs_its_first_escrows_then_how_many_more():
    escrows = due_escrows(LOGGED_ESCROWS + 5)

    run = run_job("release_escrows", as_of=AS_OF)

    lines = own_lines(run)
    assert sum(line.startswith("Releasing escrow ") for line in lines) == LOGGED_ESCROWS
    assert sum(line.endswith(" released successfully") for line in lines) == LOGGED_ESCROWS
    assert "... and 5 more escrows released" in lines
    assert lines[-1] == f"Escrow release job completed. Processed {len(escrows)} escrows."


def test_a_release_with_nothing_due_logs_only_its_one_line():
    run = run_job("release_escrows", as_of=AS_OF)

    assert own_lines(run) == []
    (attempt,) = run.attempts.all()
    assert [entry["line"] for entry in attempt.log] == [
        f"Job succeeded: release_escrows run #{run.pk} in {run.duration_ms} ms, nothing to do"
    ]


def test_expire_matches_logs_its_start_and_how_many_it_expired():
    for hours in (25, 26, 30):
        match_at(at=AS_OF - timedelta(hours=hours))

    run = run_job("expire_matches", as_of=AS_OF)

    assert own_lines(run) == ["Starting match expiration job...", "Expired 3 matches"]


def test_cycle_reminders_logs_the_seed_lines_for_reminders_and_defaults():
    # given two cycles due within the window and one overdue (built before other escrows)
    due = [obligated_cycle(due_at=AS_OF + days * DAY) for days in (2, 3)]
    overdue = obligated_cycle(due_at=AS_OF - DAY)

    run = run_job("cycle_reminders", as_of=AS_OF)

    window = settings.CYCLE_REMINDER_DAYS
    assert own_lines(run) == [
        "Starting cycle reminders job...",
        f"Found 2 cycles due in {window} days",
        *[f"Reminder sent for cycle {cycle.pk} to user {cycle.wallet.user_id}" for cycle in due],
        "Found 1 overdue cycles",
        f"Cycle {overdue.pk} marked as defaulted for user {overdue.wallet.user_id}",
        "Cycle reminders job completed. Sent 2 reminders, defaulted 1 cycles.",
    ]


def test_many_defaults_log_their_first_cycles_then_how_many_more():
    for hours in range(22):
        obligated_cycle(due_at=AS_OF - DAY - timedelta(hours=hours))

    run = run_job("cycle_reminders", as_of=AS_OF)

    lines = own_lines(run)
    assert sum(" marked as defaulted for user " in line for line in lines) == 20
    assert "... and 2 more cycles defaulted" in lines
    assert lines[-1] == "Cycle reminders job completed. Sent 0 reminders, defaulted 22 cycles."


def test_check_milestones_logs_each_milestone_then_how_many_more_and_a_closing_line():
    # given more users reaching their first fulfilled cycle than a run logs one a line
    wallets = [WalletFactory() for _ in range(LOGGED_MILESTONES + 2)]
    for wallet in wallets:
        fulfilled_cycle(wallet=wallet, donor=funded_wallet(), obligated_at=AS_OF - 20 * DAY, days=1)
    users = Wallet.objects.count()

    run = run_job("check_milestones", as_of=AS_OF)

    lines = own_lines(run)
    first = sorted(wallet.user_id for wallet in wallets)[0]
    assert lines[:3] == [
        "Starting milestone check job...",
        f"Checking milestones for {users} users",
        f"User {first} reached a milestone: 1 fulfilled cycle (has 1)",
    ]
    assert sum(" reached a milestone: " in line for line in lines) == LOGGED_MILESTONES
    assert "... and 2 more milestones reached" in lines
    assert lines[-1] == (
        f"Milestone check job completed. Checked {users} users, {len(wallets)} milestones "
        f"reached ({len(wallets)} × 1 fulfilled cycle)."
    )


def test_deliver_notifications_logs_what_it_delivered():
    match_at(at=AS_OF - timedelta(hours=25))
    run_job("expire_matches", as_of=AS_OF)

    run = run_job("deliver_notifications", as_of=AS_OF)

    assert "Delivered 1 notifications (0 retrying, 0 failed)" in own_lines(run)
