"""Targeted runs of the ledger's jobs: `release_escrows(escrow_ids)`, `expire_matches(match_ids)`
and `cycle_reminders(user_ids)` touch only their targets, and only those still due."""

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings

from jobs.models import JobRun, RunStatus
from ledger.models import DonationCycle, Escrow, Match, Notification, Wallet
from ledger.services.cycles import TRUST_PENALTY
from ledger.services.donations import match_accept
from ledger.statuses import CycleStatus, EscrowStatus, MatchStatus
from tests.factories import (
    HOLD,
    WalletFactory,
    donation_at,
    funded_wallet,
    match_at,
    obligated_cycle,
)
from tests.invariants import assert_ledger_consistent
from tests.ledger.helpers import counts_of, ledger_snapshot, run_job, wallet_money_total

pytestmark = pytest.mark.django_db

AS_OF = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EXPIRY = timedelta(hours=settings.MATCH_EXPIRY_HOURS)
WINDOW = timedelta(days=settings.CYCLE_REMINDER_DAYS)
RELEASE_KEYS = (
    "escrows_released",
    "amount_released",
    "coins_awarded",
    "cycles_obligated",
    "notifications_queued",
    "sample_ids",
    "escrows_targeted",
    "escrows_not_released",
    "not_released_escrows",
)


def _trust(wallet: Wallet) -> Decimal:
    wallet.refresh_from_db()
    return wallet.trust_score


def _status(escrow: Escrow) -> str:
    escrow.refresh_from_db()
    return escrow.status


@pytest.fixture
def escrows():
    """Two due escrows and one still in its hold, an escrow released by an earlier run, and a
    due escrow nobody targets."""
    due = [donation_at(at=AS_OF - HOLD - timedelta(minutes=m), amount=1_000 * m) for m in (1, 2)]
    earlier = donation_at(at=AS_OF - HOLD - timedelta(hours=3)).escrow
    earlier_run = run_job("release_escrows", as_of=AS_OF, params={"escrow_ids": [earlier.pk]})
    assert earlier_run.summary["escrows_released"] == 1
    return {
        "due": [donation.escrow for donation in due],
        "in_hold": donation_at(at=AS_OF - HOLD + timedelta(minutes=5)).escrow,
        "released": earlier,
        "released_by": earlier_run,
        "untargeted": donation_at(at=AS_OF - HOLD - timedelta(minutes=30)).escrow,
    }


def test_a_targeted_release_releases_only_its_due_targets_and_says_why_it_left_the_others(
    escrows, caplog
):
    # given targets that are due, still in their hold, already released, and not there at all
    due, in_hold, released = escrows["due"], escrows["in_hold"], escrows["released"]
    missing = Escrow.objects.order_by("-pk").first().pk + 100
    targets = [missing, in_hold.pk, released.pk, *(escrow.pk for escrow in due)]
    money_before = wallet_money_total()
    caplog.set_level(logging.INFO)

    # when release_escrows runs with those escrow ids
    run = run_job("release_escrows", as_of=AS_OF, params={"escrow_ids": targets})

    # then only the two due targets are released, by this run
    assert run.status == RunStatus.SUCCEEDED
    assert run.params == {"escrow_ids": sorted(targets)}
    for escrow in due:
        escrow.refresh_from_db()
        assert (escrow.status, escrow.released_by_run_id) == (EscrowStatus.RELEASED, run.pk)
    assert _status(in_hold) == EscrowStatus.HOLDING
    # and the due escrow nobody targeted is still holding
    assert _status(escrows["untargeted"]) == EscrowStatus.HOLDING
    # and the summary says what was targeted and why three were not released
    assert counts_of(run.summary, RELEASE_KEYS) == {
        "escrows_released": 2,
        "amount_released": 3_000,
        "coins_awarded": 2 * settings.DONOR_RELEASE_COINS,
        "cycles_obligated": 2,
        "notifications_queued": 4,
        "sample_ids": [escrow.pk for escrow in due],
        "escrows_targeted": 5,
        "escrows_not_released": 3,
        "not_released_escrows": sorted(
            [
                {"escrow_id": missing, "reason": "no such escrow"},
                {
                    "escrow_id": in_hold.pk,
                    "reason": f"not due: holding until {in_hold.hold_until.isoformat()}",
                },
                {
                    "escrow_id": released.pk,
                    "reason": f"not holding: released by run #{escrows['released_by'].pk}",
                },
            ],
            key=lambda row: row["escrow_id"],
        ),
    }
    # and it logged the giving seed's lines for the two it found due
    lines = [record.getMessage() for record in caplog.records]
    assert f"[release_escrows #{run.pk}] Found 2 escrows ready for release" in lines
    assert f"[release_escrows #{run.pk}] Escrow release job completed. Processed 2 escrows." in (
        lines
    )
    # and money only moved from receivable to spendable
    assert wallet_money_total() == money_before
    assert_ledger_consistent()


def test_a_targeted_dry_run_previews_only_its_targets_and_the_real_run_does_just_that(escrows):
    # given the same targets
    due, in_hold = escrows["due"], escrows["in_hold"]
    targets = {"escrow_ids": [in_hold.pk, escrows["released"].pk, *(e.pk for e in due)]}
    before = ledger_snapshot()

    # when a dry run of the targeted release goes first
    dry = run_job("release_escrows", as_of=AS_OF, params=targets, dry_run=True)

    # then nothing changed, and it previews only the due targets (not the untargeted escrow)
    assert dry.status == RunStatus.SUCCEEDED
    assert ledger_snapshot() == before
    assert dry.summary["escrows_released"] == 2
    assert dry.summary["escrows_targeted"] == 4
    # and the real run then does exactly what it predicted, reasons included
    real = run_job("release_escrows", as_of=AS_OF, params=targets)
    assert counts_of(real.summary, RELEASE_KEYS) == counts_of(dry.summary, RELEASE_KEYS)
    assert _status(escrows["untargeted"]) == EscrowStatus.HOLDING


def test_a_targeted_release_never_fans_out(settings):
    # given three due escrows and a fan-out threshold of one
    settings.STEWARD_FANOUT_THRESHOLD = 1
    due = [donation_at(at=AS_OF - HOLD - timedelta(minutes=m)).escrow for m in (1, 2, 3)]

    # when a targeted release of all three runs
    run = run_job("release_escrows", as_of=AS_OF, params={"escrow_ids": [e.pk for e in due]})

    # then the run released them itself, with no shard runs
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary["escrows_released"] == 3
    assert not JobRun.objects.filter(parent=run).exists()


def test_a_targeted_expiry_expires_only_its_due_pending_targets():
    # given two stale pending matches, one accepted, one not yet due, and one nobody targets
    stale = [match_at(at=AS_OF - EXPIRY - timedelta(minutes=m), amount=500 * m) for m in (1, 2)]
    accepted = match_at(at=AS_OF - EXPIRY - timedelta(minutes=5), donor=funded_wallet())
    match_accept(match=accepted, at=AS_OF - EXPIRY - timedelta(minutes=1))
    not_due = match_at(at=AS_OF - EXPIRY + timedelta(minutes=1))
    untargeted = match_at(at=AS_OF - EXPIRY - timedelta(minutes=10))
    targets = [*(m.pk for m in stale), accepted.pk, not_due.pk]

    # when expire_matches runs with those match ids
    run = run_job("expire_matches", as_of=AS_OF, params={"match_ids": targets})

    # then just the two stale targets expired and their donors were told
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary["matches_expired"] == 2
    assert run.summary["amount_unmatched"] == 1_500
    expired = set(Match.objects.filter(status=MatchStatus.EXPIRED).values_list("pk", flat=True))
    assert expired == {m.pk for m in stale}
    assert set(
        Notification.objects.filter(kind="match_expired").values_list("dedupe_key", flat=True)
    ) == {f"match-expired:{m.pk}" for m in stale}
    untargeted.refresh_from_db()
    assert untargeted.status == MatchStatus.PENDING
    # and the summary names the targets it left and why
    assert run.summary["matches_targeted"] == 4
    assert run.summary["not_expired_matches"] == [
        {"match_id": accepted.pk, "reason": "not pending: accepted"},
        {"match_id": not_due.pk, "reason": f"not due: expires at {not_due.expires_at.isoformat()}"},
    ]

    # and a dry run of the same targets now finds nothing left to expire
    dry = run_job("expire_matches", as_of=AS_OF, params={"match_ids": targets}, dry_run=True)
    assert (dry.summary["matches_expired"], dry.summary["matches_not_expired"]) == (0, 4)


def test_a_targeted_cycle_run_reminds_and_defaults_only_its_users_cycles():
    # given two users, each with a cycle due within the window and an overdue one
    targeted, other = WalletFactory(), WalletFactory()
    cycles = {
        (wallet, kind): obligated_cycle(due_at=due_at, wallet=wallet)
        for wallet in (targeted, other)
        for kind, due_at in (("soon", AS_OF + WINDOW / 2), ("overdue", AS_OF - timedelta(hours=1)))
    }

    trust_before = {wallet.pk: _trust(wallet) for wallet in (targeted, other)}

    # when a dry run, then the real run, of cycle_reminders target the first user
    params = {"user_ids": [targeted.user_id]}
    dry = run_job("cycle_reminders", as_of=AS_OF, params=params, dry_run=True)
    run = run_job("cycle_reminders", as_of=AS_OF, params=params)

    # then only that user's cycles were reminded and defaulted, as the dry run predicted
    assert run.status == RunStatus.SUCCEEDED
    expected = {
        "reminders_sent": 1,
        "cycles_defaulted": 1,
        "notifications_queued": 3,
        "users_targeted": 1,
    }
    keys = tuple(expected)
    assert counts_of(run.summary, keys) == counts_of(dry.summary, keys) == expected
    soon, overdue = cycles[targeted, "soon"], cycles[targeted, "overdue"]
    soon.refresh_from_db()
    overdue.refresh_from_db()
    assert soon.reminded_at is not None
    assert overdue.status == CycleStatus.DEFAULTED
    assert _trust(targeted) == trust_before[targeted.pk] - TRUST_PENALTY
    # and the other user's cycles and trust are untouched
    assert _trust(other) == trust_before[other.pk]
    for kind in ("soon", "overdue"):
        cycle = DonationCycle.objects.get(pk=cycles[other, kind].pk)
        assert (cycle.status, cycle.reminded_at) == (CycleStatus.OBLIGATED, None)
    assert not Notification.objects.filter(
        kind__startswith="cycle_", user_id=other.user_id
    ).exists()
