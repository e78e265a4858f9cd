"""Cancelling runs, with the runner in this process: a queued run ends at once, a running one
at its next batch boundary, a fanned-out one once its shards have; a finished one cannot be."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.cancellation import job_run_cancel
from jobs.exceptions import RunNotCancellable, UnknownRun
from jobs.models import AttemptStatus, ControlAction, JobRun, RunStatus, run_move
from jobs.queues import queue_stats
from jobs.rescue import runs_rescue
from jobs.runner import job_run_execute
from jobs.services import job_run_request
from ledger.models import Escrow
from ledger.services.donations import wallet_deposit
from ledger.statuses import EscrowStatus
from tests.factories import HOLD, WalletFactory, donation_at
from tests.invariants import assert_ledger_consistent

pytestmark = pytest.mark.django_db

OPERATOR = "ops-alice"


def due_escrows(count):
    at = timezone.now() - HOLD - timedelta(minutes=5)
    donor = WalletFactory()
    wallet_deposit(wallet=donor, amount=10_000 * count, reference=f"cancel-{donor.pk}")
    donor.refresh_from_db()
    return [donation_at(at=at, donor=donor) for _ in range(count)]


def cancel_audit():
    return list(ControlAction.objects.filter(action=ControlAction.Action.RUN_CANCELLED))


def test_a_queued_run_is_cancelled_at_once_and_its_message_runs_nothing(
    broker, django_capture_on_commit_callbacks
):
    # given a queued run whose message waits in Redis
    with django_capture_on_commit_callbacks(execute=True):
        run = job_run_request(job="expire_matches", trigger="api", requested_by="ops-bob")
    assert next(s for s in queue_stats() if s.name == "default").waiting == 1

    # when an operator cancels it
    cancelled = job_run_cancel(run=run.pk, by=OPERATOR, reason="requested by mistake")

    # then it is cancelled at once, saying who and why, and the cancel is audited
    assert cancelled.status == RunStatus.CANCELLED
    assert cancelled.is_finished
    assert cancelled.status_reason == f"cancelled by {OPERATOR}: requested by mistake"
    assert (cancelled.cancel_requested_by, cancelled.cancel_reason) == (
        OPERATOR,
        "requested by mistake",
    )
    (entry,) = cancel_audit()
    assert (entry.target_type, entry.target, entry.actor) == (
        "run",
        f"#{run.pk} expire_matches",
        OPERATOR,
    )
    assert (entry.before, entry.after) == (
        {"status": "queued"},
        {"status": "cancelled", "stopping": False},
    )

    # when a worker is handed its message, it runs nothing
    delivered = job_run_execute(run_id=run.pk)
    assert delivered.status == RunStatus.CANCELLED
    assert delivered.attempt_count == 0
    assert not delivered.attempts.exists()


# Committed as a worker commits: inside a test's transaction the body's savepoint would roll
# back the cancel it records.
@pytest.mark.django_db(transaction=True)
def test_a_running_run_stops_at_its_next_batch_boundary_keeping_what_it_did(register_test_job):
    # given a job of five batches whose run is cancelled while its third batch is done
    batches_done = []

    def body(context):
        for done in range(1, 6):
            batches_done.append(done)
            if done == 3:
                asked = job_run_cancel(run=context.run.pk, by=OPERATOR, reason="wrong day")
                # a running run is only asked to stop; asking again changes nothing
                assert asked.status == RunStatus.RUNNING
                job_run_cancel(run=context.run.pk, by="ops-bob", reason="me too")
            context.progress(done=done, total=5, what="items")
        return {"items": 5}

    spec = register_test_job(body)
    run = job_run_request(enqueue=False, job=spec.name, trigger="cli")

    # when it runs
    run = job_run_execute(run_id=run.pk)

    # then it stopped after the third batch, cancelled, with who, why and what it did
    assert batches_done == [1, 2, 3]
    assert run.status == RunStatus.CANCELLED
    assert run.status_reason == f"cancelled by {OPERATOR}: wrong day; stopped after 3 items"
    assert run.summary == {"items_done": 3}
    assert run.finished_at is not None
    attempt = run.attempts.get()
    assert attempt.status == AttemptStatus.CANCELLED
    (entry,) = cancel_audit()
    assert (entry.actor, entry.after) == (OPERATOR, {"status": "running", "stopping": True})


@pytest.mark.parametrize("status", [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED])
def test_a_finished_run_cannot_be_cancelled_and_nothing_changes(status):
    # given a finished run
    run = job_run_request(enqueue=False, job="expire_matches", trigger="cli")
    finished_at = timezone.now()
    JobRun.objects.filter(pk=run.pk).update(
        status=status, finished_at=finished_at, status_reason="as it was"
    )

    # when an operator tries to cancel it, it is refused
    with pytest.raises(RunNotCancellable) as refused:
        job_run_cancel(run=run.pk, by=OPERATOR, reason="too late")
    assert refused.value.status_code == 409
    assert f"already {status}" in str(refused.value)

    # and nothing changed
    run.refresh_from_db()
    assert (run.status, run.status_reason, run.finished_at) == (status, "as it was", finished_at)
    assert run.cancel_requested_at is None
    assert not cancel_audit()


def test_an_unknown_run_is_not_found():
    with pytest.raises(UnknownRun) as refused:
        job_run_cancel(run=999_999, by=OPERATOR)
    assert refused.value.status_code == 404
    assert not cancel_audit()


@pytest.fixture
def small_shards(settings):
    settings.STEWARD_FANOUT_THRESHOLD = 10
    settings.STEWARD_SHARD_SIZE = 10
    return settings


def fanned_out_release():
    due_escrows(35)
    run = job_run_request(enqueue=False, job="release_escrows", trigger="cli")
    parent = job_run_execute(run_id=run.pk)
    assert parent.status == RunStatus.WAITING
    return parent, list(parent.shards.order_by("pk"))


def released():
    return Escrow.objects.filter(status=EscrowStatus.RELEASED).count()


def test_a_waiting_parent_cancelled_cancels_its_shards_and_ends_once_they_have(
    small_shards, django_capture_on_commit_callbacks
):
    # given a fanned-out release: one shard done, one running on some worker, two queued
    parent, shards = fanned_out_release()
    assert job_run_execute(run_id=shards[0].pk).status == RunStatus.SUCCEEDED
    assert run_move(shards[1].pk, source={RunStatus.QUEUED}, target=RunStatus.RUNNING)

    # when an operator cancels the parent
    with django_capture_on_commit_callbacks(execute=True):
        asked = job_run_cancel(run=parent.pk, by=OPERATOR, reason="bad batch")

    # then the queued shards are cancelled, the running one is asked to stop, and the parent
    # waits for it
    assert asked.status == RunStatus.WAITING
    statuses = dict(JobRun.objects.filter(parent=parent).values_list("pk", "status"))
    assert [statuses[shard.pk] for shard in shards] == [
        RunStatus.SUCCEEDED,
        RunStatus.RUNNING,
        RunStatus.CANCELLED,
        RunStatus.CANCELLED,
    ]
    assert JobRun.objects.get(pk=shards[1].pk).cancel_requested_by == OPERATOR

    # when the running shard's message is delivered again (its worker died), it stops there
    shard = job_run_execute(run_id=shards[1].pk)
    assert shard.status == RunStatus.CANCELLED

    # then the parent ends cancelled, saying who and why, with the done shard's work
    parent.refresh_from_db()
    assert parent.status == RunStatus.CANCELLED
    assert f"cancelled by {OPERATOR}: bad batch" in parent.status_reason
    assert parent.summary["escrows_released"] == 10
    # and a cancelled shard's message, delivered late, changes nothing
    assert job_run_execute(run_id=shards[2].pk).attempt_count == 0
    assert released() == 10
    assert_ledger_consistent()


def test_a_waiting_parent_with_no_shard_running_ends_cancelled_at_once(
    small_shards, django_capture_on_commit_callbacks
):
    parent, shards = fanned_out_release()

    with django_capture_on_commit_callbacks(execute=True):
        job_run_cancel(run=parent.pk, by=OPERATOR)

    parent.refresh_from_db()
    assert parent.status == RunStatus.CANCELLED
    assert parent.status_reason.startswith(f"cancelled by {OPERATOR}")
    assert not parent.shards.exclude(status=RunStatus.CANCELLED).exists()
    assert released() == 0


def test_cancelling_the_last_open_shard_ends_its_parent(
    small_shards, django_capture_on_commit_callbacks
):
    # given a fanned-out release whose shards have all ended but one, still queued
    parent, shards = fanned_out_release()
    for shard in shards[:-1]:
        job_run_execute(run_id=shard.pk)

    # when that shard is cancelled
    with django_capture_on_commit_callbacks(execute=True):
        job_run_cancel(run=shards[-1].pk, by=OPERATOR)

    # then the parent ends at once, partial: a shard's work was not done
    parent.refresh_from_db()
    assert parent.status == RunStatus.PARTIAL
    assert "1 shards cancelled" in parent.status_reason
    assert parent.summary["escrows_released"] == 30


def test_a_rescued_run_that_was_asked_to_stop_ends_cancelled(
    broker, django_capture_on_commit_callbacks
):
    # given a run left running by a dead worker (nobody holds its lock) after a cancel request
    run = job_run_request(enqueue=False, job="expire_matches", trigger="cli")
    assert run_move(run.pk, source={RunStatus.QUEUED}, target=RunStatus.RUNNING)
    job_run_cancel(run=run.pk, by=OPERATOR, reason="stuck")

    # when the rescue finds it
    with django_capture_on_commit_callbacks(execute=True):
        counts = runs_rescue()

    # then it ends cancelled, neither failed nor sent again
    assert counts == {"runs_cancelled": 1}
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.status_reason == f"cancelled by {OPERATOR}: stuck"
    assert sum(stats.waiting for stats in queue_stats()) == 0
