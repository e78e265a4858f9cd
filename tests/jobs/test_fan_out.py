"""Fan-out: a large backlog split into shard runs, and the parent that adds them up."""

import time
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from jobs.models import JobRun, RunStatus
from jobs.runner import job_run_execute
from jobs.services import job_run_request
from ledger.models import Escrow, Transfer, Wallet
from ledger.statuses import EscrowStatus
from tests.factories import HOLD, WalletFactory, donation_at
from tests.invariants import assert_ledger_consistent
from tests.workers import WorkerProcess


@pytest.fixture
def small_shards(settings):
    settings.STEWARD_FANOUT_THRESHOLD = 10
    settings.STEWARD_SHARD_SIZE = 10
    return settings


def due_escrows(count):
    at = timezone.now() - HOLD - timedelta(minutes=5)
    donor = WalletFactory()
    from ledger.services.donations import wallet_deposit

    wallet_deposit(wallet=donor, amount=10_000 * count, reference=f"fan-{donor.pk}")
    donor.refresh_from_db()
    return [donation_at(at=at, donor=donor) for _ in range(count)]


def run_cli(job, **fields):
    run = job_run_request(enqueue=False, job=job, trigger="cli", **fields)
    return job_run_execute(run_id=run.pk)


@pytest.mark.django_db
def test_a_large_backlog_fans_out_and_the_last_shard_ends_the_parent(small_shards, broker):
    # given 35 due escrows, with fan-out above 10 rows in shards of 10
    due_escrows(35)

    # when release_escrows runs
    parent = run_cli("release_escrows")

    # then it hands the work to 4 shards (pk ranges) and waits for them
    assert parent.status == RunStatus.WAITING
    assert parent.summary == {"escrows_due": 35, "shards": 4}
    shards = list(parent.shards.order_by("pk"))
    assert [shard.shard["index"] for shard in shards] == [0, 1, 2, 3]
    assert shards[-1].shard["pk_to"] is None
    assert all(shard.message_id and shard.status == RunStatus.QUEUED for shard in shards)
    assert Escrow.objects.filter(status=EscrowStatus.RELEASED).count() == 0

    # when each shard runs (as any worker would), the parent waits until the last one
    for shard in shards[:-1]:
        assert job_run_execute(run_id=shard.pk).status == RunStatus.SUCCEEDED
        assert JobRun.objects.get(pk=parent.pk).status == RunStatus.WAITING
    job_run_execute(run_id=shards[-1].pk)

    # then the parent succeeded with the shards' summaries added up, each escrow paid once
    parent.refresh_from_db()
    assert parent.status == RunStatus.SUCCEEDED
    assert parent.summary["escrows_released"] == 35
    assert parent.summary["coins_awarded"] == 35 * 50
    assert parent.summary["shards"] == 4
    assert parent.summary["shards_failed"] == 0
    assert parent.duration_ms is not None
    assert [s.summary["escrows_released"] for s in parent.shards.order_by("pk")] == [10, 10, 10, 5]
    assert Transfer.objects.filter(kind="escrow_release").count() == 35
    assert_ledger_consistent()


@pytest.mark.django_db
def test_a_small_backlog_runs_in_one_message(small_shards, broker):
    due_escrows(10)
    run = run_cli("release_escrows")
    assert run.status == RunStatus.SUCCEEDED
    assert not run.shards.exists()


@pytest.mark.django_db
def test_a_new_run_is_skipped_while_shards_are_running_and_duplicates_are_ignored(
    small_shards, broker
):
    # given a parent waiting for its shards
    due_escrows(25)
    parent = run_cli("release_escrows")
    shard = parent.shards.order_by("pk").first()

    # when the next scheduled run starts, it is skipped with the reason
    second = run_cli("release_escrows")
    assert second.status == RunStatus.SKIPPED
    assert f"shards of run #{parent.pk}" in second.status_reason

    # and a shard delivered twice does its work once
    assert job_run_execute(run_id=shard.pk).summary["escrows_released"] == 10
    assert job_run_execute(run_id=shard.pk).summary["escrows_released"] == 10
    assert Transfer.objects.filter(kind="escrow_release").count() == 10


@pytest.mark.django_db
def test_shards_lost_beyond_the_time_limit_fail_their_parent_and_free_the_job(small_shards, broker):
    due_escrows(25)
    parent = run_cli("release_escrows")
    JobRun.objects.filter(pk=parent.pk).update(started_at=timezone.now() - timedelta(days=1))
    next_run = run_cli("release_escrows")
    parent.refresh_from_db()
    assert parent.status == RunStatus.FAILED
    assert "never ended" in parent.error
    assert next_run.status in (RunStatus.WAITING, RunStatus.SUCCEEDED)


@pytest.mark.django_db
def test_a_shard_failing_after_its_retries_fails_the_parent_with_one_alert(
    small_shards, broker, register_test_job, settings
):
    # given a job whose second shard always fails, over 30 wallets
    settings.ADMINS = [("ops", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    for _ in range(30):
        WalletFactory()

    def body(context):
        rows = Wallet.objects.all()
        if context.should_fan_out(rows.count()):
            return context.fan_out(rows, summary={})
        if context.run.shard["index"] == 1:
            raise RuntimeError("shard 1 cannot reach its provider")
        return {"wallets": rows.filter(pk__gte=context.pk_range[0]).count()}

    spec = register_test_job(body)
    parent = run_cli(spec.name)
    shards = list(parent.shards.order_by("pk"))
    assert len(shards) == 3

    # when shard 1 fails one attempt and is retried, the parent keeps waiting
    with pytest.raises(RuntimeError):
        job_run_execute(run_id=shards[1].pk, final_attempt=False)
    assert JobRun.objects.get(pk=shards[1].pk).status == RunStatus.QUEUED
    for shard in (shards[0], shards[2]):
        job_run_execute(run_id=shard.pk)
    assert JobRun.objects.get(pk=parent.pk).status == RunStatus.WAITING

    # when its last attempt fails too, the parent fails and one alert goes out
    with pytest.raises(RuntimeError):
        job_run_execute(run_id=shards[1].pk, final_attempt=True)
    parent.refresh_from_db()
    assert parent.status == RunStatus.FAILED
    assert parent.summary["shards_failed"] == 1
    assert "1 of 3 shards failed" in parent.error
    assert len(mail.outbox) == 1
    assert f"run #{parent.pk}" in mail.outbox[0].subject


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_two_real_workers_share_the_shards_of_one_release(broker, tmp_path):
    # given 1,200 due escrows and two worker processes, fan-out in shards of 150
    env = {"STEWARD_FANOUT_THRESHOLD": "200", "STEWARD_SHARD_SIZE": "150"}
    due_escrows(1_200)
    workers = [WorkerProcess(log_path=tmp_path / f"worker{i}.log", env=env) for i in range(2)]
    for worker in workers:
        worker.start()
    try:
        # when the release is sent to the workers
        parent = job_run_request(job="release_escrows", trigger="cli")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            parent.refresh_from_db()
            if parent.is_finished:
                break
            time.sleep(0.2)
    finally:
        for worker in workers:
            worker.stop()

    # then the shards released every escrow exactly once and the parent added them up
    assert parent.status == RunStatus.SUCCEEDED, parent.status_reason
    assert parent.summary["shards"] == 8
    assert parent.summary["escrows_released"] == 1_200
    assert Escrow.objects.filter(status=EscrowStatus.HOLDING).count() == 0
    assert_ledger_consistent()
