"""Scheduling and shutdown with real worker and scheduler processes."""

import signal
import time
from datetime import timedelta
from urllib.request import urlopen

import pytest
from django.db import connection
from django.utils import timezone

from jobs.actors import tick_actor
from jobs.models import AttemptStatus, JobRun, RunStatus, Schedule
from jobs.runner import job_run_execute
from jobs.services import job_run_request
from ledger.models import Escrow, Transfer
from ledger.statuses import EscrowStatus
from tests.factories import HOLD, donation_at, seeded_due_escrow_ids
from tests.invariants import assert_ledger_consistent
from tests.workers import WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def wait_for(predicate, timeout=60.0, interval=0.1, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")


def run_finished(run_id):
    return lambda: JobRun.objects.get(pk=run_id).is_finished


def every_minute(job: str) -> Schedule:
    """The job's default schedule moved to every minute; every other schedule removed."""
    Schedule.objects.exclude(name=job).delete()
    Schedule.objects.filter(name=job).update(
        cron="* * * * *", next_slot=None, created_at=timezone.now() - timedelta(minutes=1)
    )
    return Schedule.objects.get(name=job)


def test_a_duplicated_tick_message_through_the_worker_gives_one_run_and_one_effect(
    worker_process,
):
    # given two due escrows, release_escrows every minute, and one tick delivered twice
    schedule = every_minute("release_escrows")
    now = timezone.now()
    for _ in range(2):
        donation_at(at=now - HOLD - timedelta(minutes=1))
    scheduled_at = now.replace(second=0, microsecond=0).isoformat()
    tick = tick_actor()
    tick.send_with_options(scheduled_at=scheduled_at)
    tick.send_with_options(scheduled_at=scheduled_at)

    # when the worker has processed both ticks and the run they recorded
    wait_for(lambda: JobRun.objects.filter(schedule=schedule).exists(), message="a run")
    run = JobRun.objects.get(schedule=schedule)
    wait_for(run_finished(run.pk), message="the run")
    time.sleep(1)

    # then there is one run for the slot and each escrow was released and paid once
    assert JobRun.objects.filter(job="release_escrows").count() == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary["escrows_released"] == 2
    assert Transfer.objects.filter(kind="escrow_release").count() == 2
    assert_ledger_consistent()


def advisory_locks_held() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE l.locktype = 'advisory' AND d.datname = current_database()"
        )
        return cursor.fetchone()[0]


def released_count() -> int:
    return Escrow.objects.filter(status=EscrowStatus.RELEASED).count()


@pytest.mark.parametrize("fault", ["SIGTERM", "SIGKILL"])
def test_a_worker_stopped_mid_run_leaves_consistent_state_and_the_next_run_finishes(
    tmp_path, fault
):
    # given a large backlog of due escrows, released in small batches by a real worker
    due = len(seeded_due_escrow_ids(8_000))
    worker = WorkerProcess(log_path=tmp_path / "worker.log", env={"STEWARD_BATCH_SIZE": "50"})
    worker.start()
    run = job_run_request(job="release_escrows", trigger="cli", reason=f"{fault} test")

    # when the worker gets the signal in the middle of the sweep
    wait_for(lambda: released_count() > 0, message="the first batches")
    worker.signal(getattr(signal, fault))
    started = time.monotonic()
    worker.process.wait(timeout=30)
    stop_seconds = time.monotonic() - started
    worker.stop()

    # then it stopped part-way, every batch is all-or-nothing, and money is conserved
    part = released_count()
    assert 0 < part < due
    assert_ledger_consistent()
    run.refresh_from_db()
    if fault == "SIGTERM":
        # a graceful stop finishes its batch, exits promptly and hands the run back: its
        # attempt abandoned, not failed, and no other attempt started while it stopped
        assert stop_seconds < 20
        assert run.status == RunStatus.QUEUED
        attempt = run.attempts.get()
        assert attempt.status == AttemptStatus.ABANDONED
        assert "worker shutting down" in attempt.error
        assert "will resume" in worker.log_text()
        # when a worker comes back, it finishes the sweep
        again = WorkerProcess(log_path=tmp_path / "worker2.log")
        again.start()
        try:
            wait_for(run_finished(run.pk), message="the retried run")
        finally:
            again.stop()
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED
        assert run.attempts.count() == 2
    else:
        # a killed worker leaves the run running; once PostgreSQL has ended the dead
        # worker's session (and with it the job lock), the next run takes over and finishes
        assert run.status == RunStatus.RUNNING
        wait_for(lambda: not advisory_locks_held(), message="the dead worker's job lock to go")
        next_run = job_run_request(enqueue=False, job="release_escrows", trigger="cli")
        next_run = job_run_execute(run_id=next_run.pk)
        assert next_run.status == RunStatus.SUCCEEDED
        assert next_run.summary["escrows_released"] == due - part
        run.refresh_from_db()
        assert run.status == RunStatus.FAILED
        assert "worker lost" in run.error
    assert released_count() == due
    assert_ledger_consistent()


def test_a_real_worker_exports_dramatiq_prometheus_metrics(tmp_path):
    # given a worker exporting metrics on a private port, and one run it processed
    port = "19291"
    worker = WorkerProcess(log_path=tmp_path / "worker.log", env={"dramatiq_prom_port": port})
    worker.start()
    try:
        run = job_run_request(job="expire_matches", trigger="cli")
        wait_for(run_finished(run.pk), message="the run")

        # then its exposition server reports the processed message
        def scraped():
            try:
                return urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
            except OSError:
                return ""

        wait_for(
            lambda: 'actor_name="run_expire_matches"' in scraped(),
            timeout=30,
            message="worker metrics",
        )
        assert "dramatiq_messages_total" in scraped()
    finally:
        worker.stop()


def test_a_requeued_dead_letter_is_run_by_a_real_worker(broker, tmp_path):
    from jobs.actors import actor_for
    from jobs.dead_letters import queue_requeue_dead
    from jobs.queues import queue_stats

    # given a queued run whose message was dead-lettered before any worker ran it
    run = job_run_request(enqueue=False, job="expire_matches", trigger="cli", reason="dead letter")
    actor_for("expire_matches").send(run.pk)
    consumer = broker.consume("default", prefetch=1, timeout=1000)
    try:
        consumer.nack(next(consumer))
    finally:
        consumer.close()
    assert next(s for s in queue_stats() if s.name == "default").dead_lettered == 1

    # when an operator requeues the dead letters and a worker is running
    assert queue_requeue_dead(queue="default", requested_by="ops")["requeued"] == 1
    worker = WorkerProcess(log_path=tmp_path / "worker.log")
    worker.start()
    try:
        wait_for(run_finished(run.pk), message="the requeued run")
    finally:
        worker.stop()

    # then the worker ran it
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert next(s for s in queue_stats() if s.name == "default").dead_lettered == 0
