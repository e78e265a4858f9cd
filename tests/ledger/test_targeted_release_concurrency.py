"""A targeted run beside its job's full sweep: never skipped because the sweep holds the job's
lock (its lock is its parameters'), and, run at the same moment over the same escrows, each
escrow is released exactly once and no money is made or lost."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from jobs.locks import job_lock
from jobs.models import RunStatus
from jobs.runner import job_run_execute
from jobs.services import job_run_request
from ledger.models import Escrow, Transfer, TransferKind, Wallet
from ledger.services.demo import DemoPlan, demo_seed
from ledger.services.escrows import escrows_due
from ledger.statuses import EscrowStatus
from tests.concurrency import at_once
from tests.factories import HOLD, donation_at
from tests.invariants import assert_ledger_consistent
from tests.ledger.helpers import wallet_money_total

pytestmark = pytest.mark.django_db(transaction=True)

ESCROWS = 600


@contextmanager
def lock_held_elsewhere(job: str) -> Iterator[None]:
    """The job's whole lock, held by another connection, as a running full sweep holds it."""
    held, release = threading.Event(), threading.Event()
    outcome: list[object] = []

    def hold() -> None:
        try:
            with job_lock(job) as lock:
                outcome.append(lock.acquired)
                held.set()
                release.wait(timeout=60)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            outcome.append(exc)
            held.set()
        finally:
            connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(timeout=30)
        assert outcome == [True], outcome
        yield
    finally:
        release.set()
        thread.join(timeout=30)


def _execute(job: str, params: dict | None = None):
    run = job_run_request(job=job, trigger="api", params=params, enqueue=False)
    return job_run_execute(run_id=run.pk)


def test_a_targeted_release_runs_while_the_full_sweep_holds_the_jobs_lock():
    # given two due escrows, one of them targeted
    now = timezone.now()
    target, other = (donation_at(at=now - HOLD - HOLD / 10).escrow for _ in range(2))

    # when another connection holds release_escrows' lock, as a running sweep does
    with lock_held_elsewhere("release_escrows"):
        # and a full sweep is requested, then a targeted release
        sweep = _execute("release_escrows")
        targeted = _execute("release_escrows", {"escrow_ids": [target.pk]})

    # then the sweep is skipped, but the targeted release ran and released its escrow
    assert sweep.status == RunStatus.SKIPPED
    assert "another run of release_escrows is in progress" in sweep.status_reason
    assert targeted.status == RunStatus.SUCCEEDED, targeted.status_reason
    assert targeted.summary["escrows_released"] == 1
    statuses = dict(Escrow.objects.values_list("pk", "status"))
    assert statuses == {target.pk: EscrowStatus.RELEASED, other.pk: EscrowStatus.HOLDING}
    assert_ledger_consistent()


@pytest.mark.parametrize(
    ("job", "params"),
    [
        ("expire_matches", {"match_ids": [1, 2]}),
        ("cycle_reminders", {"user_ids": [3]}),
        ("finalize_prize_pools", {"game": "snake"}),
        ("finalize_prize_pools", {"period": "weekly"}),
    ],
)
def test_every_money_jobs_targeted_run_is_not_skipped_by_its_sweeps_lock(job, params):
    # given another connection holding the job's lock, as its running sweep does
    with lock_held_elsewhere(job):
        # when a targeted run of it is executed
        run = _execute(job, params)

    # then it ran instead of being skipped
    assert run.status == RunStatus.SUCCEEDED, run.status_reason
    assert run.lock_scope


def test_a_sweep_and_a_targeted_release_at_once_release_each_escrow_exactly_once(settings):
    # given 600 due escrows, every other one targeted, and small batches so the runs interleave
    settings.STEWARD_BATCH_SIZE = 20
    now = timezone.now()
    demo_seed(
        plan=DemoPlan(
            users=ESCROWS,
            seed=11,
            holding_escrows=1.0,
            due_escrow_share=1.0,
            pending_matches=0,
            obligated_cycles=0,
        ),
        now=now,
    )
    escrow_ids = sorted(escrows_due(as_of=now).values_list("pk", flat=True))
    assert len(escrow_ids) == ESCROWS
    targets = escrow_ids[::2]
    money_before = wallet_money_total()
    sweep = job_run_request(job="release_escrows", trigger="schedule", as_of=now, enqueue=False)
    targeted = job_run_request(
        job="release_escrows",
        trigger="api",
        as_of=now,
        params={"escrow_ids": targets},
        enqueue=False,
    )

    # when both runs execute at the same moment, each in its own thread and connection
    at_once(*(lambda run=run: job_run_execute(run_id=run.pk) for run in (sweep, targeted)))

    # then both ran (neither was skipped) and both did part of the work
    sweep.refresh_from_db()
    targeted.refresh_from_db()
    assert (sweep.status, targeted.status) == (RunStatus.SUCCEEDED, RunStatus.SUCCEEDED)
    released = {run.pk: run.summary["escrows_released"] for run in (sweep, targeted)}
    assert sum(released.values()) == ESCROWS
    assert all(released.values()), f"the runs did not overlap: {released}"
    # and every escrow is released, by exactly one of the two runs, booked once
    by_run = dict(Escrow.objects.values_list("pk", "released_by_run_id"))
    assert set(by_run) == set(escrow_ids)
    assert set(by_run.values()) == {sweep.pk, targeted.pk}
    assert not Escrow.objects.filter(status=EscrowStatus.HOLDING).exists()
    assert Transfer.objects.filter(kind=TransferKind.ESCROW_RELEASE).count() == ESCROWS
    assert_ledger_consistent()
    # and the targeted run released only targets, naming the ones the sweep took first
    assert {pk for pk, run_id in by_run.items() if run_id == targeted.pk} <= set(targets)
    assert targeted.summary["escrows_targeted"] == len(targets)
    taken = targeted.summary["not_released_escrows"]
    assert len(taken) == len(targets) - released[targeted.pk]
    assert {row["reason"] for row in taken} <= {
        f"not holding: released by run #{sweep.pk}",
        "being released by another run",
    }
    # and no money was made or lost; the coins are exactly one award per escrow
    assert wallet_money_total() == money_before
    assert Wallet.objects.aggregate(receivable=Sum("receivable_balance"))["receivable"] == 0
    assert Wallet.objects.aggregate(coins=Sum("charity_coins"))["coins"] == (
        settings.DONOR_RELEASE_COINS * ESCROWS
    )
