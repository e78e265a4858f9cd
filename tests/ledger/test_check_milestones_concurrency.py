"""Two milestone checks at the same moment over the same users: each milestone is recorded,
announced and rewarded exactly once, and the books still balance."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from ledger.models import DonationCycle, Milestone, Notification, Transfer, TransferKind, Wallet
from ledger.services.escrows import escrows_release_due
from ledger.services.milestones import milestones_check
from ledger.services.reconcile import ledger_reconcile
from ledger.statuses import CYCLE_TRANSITIONS, CycleStatus
from tests.concurrency import at_once
from tests.factories import HOLD, donation_at, funded_wallet
from tests.invariants import assert_ledger_consistent
from tests.ledger.helpers import run_job

pytestmark = pytest.mark.django_db(transaction=True)

AS_OF = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)
DONORS = 40
BONUS = 10
MINUTE = timedelta(minutes=1)


def _users_with_milestones(donors: int) -> tuple[list[Wallet], int]:
    """`donors` donors who each gave ten donations, released (500 Charity Coins: one
    milestone each), to recipients who each fulfilled that cycle (one milestone each): the
    wallets and how many milestones they reached."""
    givers = [funded_wallet() for _ in range(donors)]
    recipients = []
    for donor in givers:
        for _ in range(10):
            recipients.append(donation_at(at=AS_OF - HOLD - MINUTE, donor=donor).recipient)
    escrows_release_due(as_of=AS_OF)
    CYCLE_TRANSITIONS.update(
        DonationCycle.objects.all(),
        source={CycleStatus.OBLIGATED},
        target=CycleStatus.FULFILLED,
        fulfilled_at=AS_OF,
    )
    return [*givers, *recipients], donors * 11


def _assert_each_milestone_once(expected: int) -> None:
    milestones = list(Milestone.objects.values_list("pk", "user_id", "kind", "threshold"))
    assert len(milestones) == expected
    assert len({row[1:] for row in milestones}) == expected
    keys = Counter(
        Notification.objects.filter(kind="milestone_reached").values_list("dedupe_key", flat=True)
    )
    assert keys == Counter(
        {f"milestone:{kind}:{threshold}:{user}": 1 for _pk, user, kind, threshold in milestones}
    )
    bonuses = Counter(
        Transfer.objects.filter(kind=TransferKind.MILESTONE_BONUS).values_list(
            "subject_id", flat=True
        )
    )
    assert bonuses == Counter({pk: 1 for pk, *_rest in milestones})
    assert_ledger_consistent()
    report = ledger_reconcile()
    assert report["clean"], [check for check in report["checks"] if not check["ok"]]


def test_two_concurrent_checks_record_announce_and_reward_each_milestone_once(settings):
    # given 440 users with a milestone each, none recorded yet
    settings.MILESTONE_BONUS_COINS = BONUS
    wallets, expected = _users_with_milestones(DONORS)
    coins_before = sum(Wallet.objects.values_list("charity_coins", flat=True))

    # when two checks sweep them at the same moment, in small batches
    results = at_once(*[lambda: milestones_check(batch_size=25) for _ in range(2)])

    # then together they recorded each milestone once, and neither failed
    assert sum(result["milestones_reached"] for result in results) == expected
    # (both went through every user: the one behind waits on the other's rows, then skips them)
    assert [result["users_checked"] for result in results] == [len(wallets)] * 2
    assert sum(result["notifications_queued"] for result in results) == expected
    assert sum(result["bonus_coins_booked"] for result in results) == expected * BONUS
    _assert_each_milestone_once(expected)
    # and the bonus went once per milestone into the users' coins
    coins_after = sum(Wallet.objects.values_list("charity_coins", flat=True))
    assert coins_after == coins_before + expected * BONUS
    assert Wallet.objects.get(pk=wallets[0].pk).charity_coins == 10 * 50 + BONUS


def test_two_concurrent_targeted_runs_over_overlapping_users_reward_each_once(settings):
    # given users with milestones, and two targeted runs whose users overlap by half
    settings.MILESTONE_BONUS_COINS = BONUS
    wallets, expected = _users_with_milestones(4)
    users = [wallet.user_id for wallet in wallets]
    first, second = users[: len(users) * 3 // 4], users[len(users) // 4 :]

    settings.STEWARD_BATCH_SIZE = 7
    # when both runs go through the runner at once (targets may run concurrently)
    runs = at_once(
        lambda: run_job("check_milestones", as_of=AS_OF, params={"user_ids": first}),
        lambda: run_job("check_milestones", as_of=AS_OF, params={"user_ids": second}),
    )

    # then both succeeded and each milestone was recorded, announced and rewarded once
    assert [run.status for run in runs] == ["succeeded", "succeeded"]
    assert sum(run.summary["milestones_reached"] for run in runs) == expected
    _assert_each_milestone_once(expected)
