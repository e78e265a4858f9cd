"""No run left behind: crashed runs and shards taken back, lost messages re-sent once or closed
as lost, fanned-out runs ended, and worker heartbeats, with real PostgreSQL and Redis."""

from __future__ import annotations

import signal
import threading
import time
from datetime import timedelta
from io import StringIO
from types import SimpleNamespace

import dramatiq
import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone

from jobs.actors import actor_for
from jobs.heartbeats import WORKER_LOST, worker_is_gone
from jobs.locks import LOCK_KEY_SQL
from jobs.models import AttemptStatus, JobRun, JobRunAttempt, RunStatus, WorkerHeartbeat
from jobs.rescue import runs_rescue
from jobs.runner import job_run_execute
from jobs.services import job_run_request
from tests.workers import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)

LATER = timedelta(minutes=6)


@pytest.fixture
def job(register_test_job):
    """A test-registered job counting its executions; its actor declared for the broker."""
    calls: list[int] = []
    spec = register_test_job(lambda context: calls.append(context.run.pk) or {"items": 1})
    actor_for(spec.name)
    return SimpleNamespace(name=spec.name, max_retries=spec.max_retries, calls=calls)


def runs_with_a_message(broker) -> set[int]:
    messages = broker.client.hvals(f"{broker.namespace}:default.msgs")
    return {dramatiq.Message.decode(payload).args[0] for payload in messages}


def left_running(job, *, parent: JobRun | None = None, shard: dict | None = None) -> JobRun:
    """A run whose worker died mid-attempt: running, one running attempt, nobody's lock."""
    run = job_run_request(job=job.name, trigger="cli", enqueue=False)
    started = timezone.now() - timedelta(minutes=2)
    JobRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING,
        started_at=started,
        attempt_count=1,
        parent=parent,
        shard=shard,
    )
    JobRunAttempt.objects.create(run=run, number=1, started_at=started, worker="dead-host:1")
    run.refresh_from_db()
    return run


def waiting_parent(job) -> JobRun:
    parent = job_run_request(job=job.name, trigger="cli", enqueue=False)
    JobRun.objects.filter(pk=parent.pk).update(
        status=RunStatus.WAITING, started_at=timezone.now(), attempt_count=1
    )
    return parent


def age(run: JobRun, by: timedelta) -> None:
    JobRun.objects.filter(pk=run.pk).update(created_at=run.created_at - by)


def test_a_shard_a_dead_worker_held_is_taken_back_and_re_sent_on_its_own(job, broker):
    # given a fanned-out run waiting for a shard whose worker died
    parent = waiting_parent(job)
    shard = left_running(job, parent=parent, shard={"index": 0, "pk_from": 1, "pk_to": None})

    # when the rescue runs
    counts = runs_rescue()

    # then the shard is queued again with a new message, its attempt closed as abandoned
    shard.refresh_from_db()
    assert counts == {"runs_taken_back": 1}
    assert shard.status == RunStatus.QUEUED
    assert shard.repairs[-1]["what"] == "worker lost on attempt 1"
    assert shard.pk in runs_with_a_message(broker)
    attempt = shard.attempts.get()
    assert (attempt.status, attempt.error) == (AttemptStatus.ABANDONED, WORKER_LOST)
    # and the parent keeps waiting for it
    assert JobRun.objects.get(pk=parent.pk).status == RunStatus.WAITING

    # when the re-sent shard runs, the parent ends with it
    job_run_execute(run_id=shard.pk)
    assert JobRun.objects.get(pk=parent.pk).status == RunStatus.SUCCEEDED
    assert job.calls == [shard.pk]


def test_a_run_whose_lock_is_held_by_a_live_executor_is_left_alone(job, broker):
    # given a running run whose lock another session holds, as a live worker's does
    run = left_running(job)
    holder = connections.create_connection("default")
    with holder.cursor() as cursor:
        cursor.execute(f"SELECT pg_advisory_lock({LOCK_KEY_SQL.format(name='%s')})", [job.name])
    try:
        # when the rescue runs, then it changes nothing
        assert runs_rescue() == {}
        assert JobRun.objects.get(pk=run.pk).status == RunStatus.RUNNING
    finally:
        holder.close()


def test_a_run_on_its_last_attempt_whose_worker_died_fails(job, broker):
    run = left_running(job)
    JobRun.objects.filter(pk=run.pk).update(attempt_count=job.max_retries + 1)

    assert runs_rescue() == {"runs_failed": 1}
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == WORKER_LOST


def test_a_lost_message_is_re_sent_once_then_its_run_is_closed_as_lost(job, broker):
    # given a queued run whose message Redis lost, older than the lost-run age
    run = job_run_request(job=job.name, trigger="cli")
    assert run.pk in runs_with_a_message(broker)
    broker.flush_all()
    age(run, LATER)

    # when the rescue runs, the run is re-sent, once
    assert runs_rescue() == {"messages_resent": 1}
    assert run.pk in runs_with_a_message(broker)
    assert runs_rescue(now=timezone.now() + LATER) == {}
    run.refresh_from_db()
    assert (run.status, run.repairs[-1]["what"]) == (RunStatus.QUEUED, "message lost")

    # when its message is lost again, the run is closed as lost with the reason
    broker.flush_all()
    assert runs_rescue(now=timezone.now() + LATER) == {"runs_lost": 1}
    run.refresh_from_db()
    assert run.status == RunStatus.LOST
    assert run.status_reason == "lost: its message was lost again"
    assert run.finished_at is not None


def test_a_young_run_or_one_whose_message_waits_is_never_re_sent(job, broker):
    # given a run just requested, and an old one whose message is only delayed (a retry's
    # backoff): neither is lost
    young = job_run_request(job=job.name, trigger="cli")
    delayed = job_run_request(job=job.name, trigger="cli", enqueue=False)
    actor_for(job.name).send_with_options(args=(delayed.pk,), delay=600_000)
    age(delayed, LATER)

    assert runs_rescue() == {}
    assert runs_rescue(now=timezone.now() + timedelta(minutes=4)) == {}
    assert {young.pk, delayed.pk} <= set(
        JobRun.objects.filter(status=RunStatus.QUEUED, repairs=[]).values_list("pk", flat=True)
    )


def test_a_run_a_later_run_already_did_is_closed_as_lost(job, broker):
    # given a queued run whose message was lost, and a later run of the job that succeeded
    lost = job_run_request(job=job.name, trigger="cli")
    broker.flush_all()
    age(lost, LATER)
    later = job_run_request(job=job.name, trigger="cli", enqueue=False)
    job_run_execute(run_id=later.pk)

    assert runs_rescue() == {"runs_lost": 1}
    lost.refresh_from_db()
    assert lost.status == RunStatus.LOST
    assert lost.status_reason == f"lost: superseded by run #{later.pk}"


def test_a_waiting_run_whose_shards_all_ended_is_ended(job, broker):
    parent = waiting_parent(job)
    shard = job_run_request(job=job.name, trigger="cli", enqueue=False)
    JobRun.objects.filter(pk=shard.pk).update(
        parent=parent, status=RunStatus.SUCCEEDED, summary={"items": 3}
    )

    assert runs_rescue() == {"parents_ended": 1}
    parent.refresh_from_db()
    assert parent.status == RunStatus.SUCCEEDED
    assert parent.summary["items"] == 3


def test_a_dry_run_reports_the_repairs_and_changes_nothing(job, broker):
    parent = waiting_parent(job)
    left_running(job, parent=parent, shard={"index": 0, "pk_from": 1, "pk_to": None})
    lost = job_run_request(job=job.name, trigger="cli")
    broker.flush_all()
    age(lost, LATER)
    before = list(JobRun.objects.order_by("pk").values())

    assert runs_rescue(dry_run=True) == {"runs_abandoned": 1, "messages_lost": 1}
    assert list(JobRun.objects.order_by("pk").values()) == before


def test_the_next_run_repairs_a_stalled_fan_out_and_waits_only_for_its_shards(job, broker):
    # given a fanned-out run whose shard a dead worker held
    parent = waiting_parent(job)
    shard = left_running(job, parent=parent, shard={"index": 0, "pk_from": 1, "pk_to": None})

    # when the next run of the job starts
    following = job_run_request(job=job.name, trigger="cli", enqueue=False)
    following = job_run_execute(run_id=following.pk)

    # then the shard went back to the workers and the new run waits for it, saying why
    assert JobRun.objects.get(pk=shard.pk).status == RunStatus.QUEUED
    assert following.status == RunStatus.SKIPPED
    assert following.status_reason == (
        f"the shards of run #{parent.pk} of {job.name} are still running"
    )


def test_runjob_waiting_on_a_run_that_is_lost_returns_with_that_outcome(job, broker):
    output = StringIO()
    waiter = threading.Thread(
        target=lambda: (
            call_command("runjob", job.name, "--enqueue", "--wait", stdout=output),
            connection.close(),
        )
    )
    waiter.start()
    try:
        run = _wait_for(lambda: JobRun.objects.filter(job=job.name).first())
        broker.flush_all()
        age(run, LATER)
        later = job_run_request(job=job.name, trigger="cli", enqueue=False)
        job_run_execute(run_id=later.pk)
        runs_rescue()
    finally:
        waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert f"{job.name} run #{run.pk}: lost" in output.getvalue()


def test_an_in_process_worker_beats_with_the_attempt_it_executes(
    register_test_job, broker, settings
):
    settings.STEWARD_WORKER_HEARTBEAT_SECONDS = 0.2
    started, release = threading.Event(), threading.Event()

    def body(context):
        started.set()
        release.wait(timeout=30)
        return {}

    spec = register_test_job(body)
    actor_for(spec.name)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        run = job_run_request(job=spec.name, trigger="cli")
        assert started.wait(timeout=15)
        beat = _wait_for(
            lambda: (
                WorkerHeartbeat.objects.filter(attempts=[{"run": run.pk, "attempt": 1}])
                .exclude(queues=[])
                .first()
            )
        )
        assert "default" in beat.queues
        assert beat.threads == 1
    finally:
        release.set()
        worker.stop()
    assert not WorkerHeartbeat.objects.filter(name=beat.name).exists()


@pytest.mark.worker
def test_a_killed_worker_is_gone_after_its_heartbeat_a_stopped_one_at_once(
    broker, tmp_path, settings
):
    settings.STEWARD_WORKER_LOST_AFTER = 4
    environment = {"STEWARD_WORKER_HEARTBEAT_SECONDS": "1"}
    killed = WorkerProcess(log_path=tmp_path / "killed.log", env=environment)
    killed.start()
    beat = _wait_for(lambda: WorkerHeartbeat.objects.first())
    assert "engine" in beat.queues
    killed.signal(signal.SIGKILL)
    killed.process.wait(timeout=10)
    # then it is reported gone once its last heartbeat is WORKER_LOST_AFTER old
    _wait_for(
        lambda: worker_is_gone(
            WorkerHeartbeat.objects.filter(name=beat.name).first(), now=timezone.now()
        ),
        timeout=4 + 5,
    )
    killed.stop()

    stopped = WorkerProcess(log_path=tmp_path / "stopped.log", env=environment)
    stopped.start()
    beat = _wait_for(lambda: WorkerHeartbeat.objects.exclude(name=beat.name).first())
    stopped.stop()
    assert not WorkerHeartbeat.objects.filter(name=beat.name).exists()


def _wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_message_a_paused_worker_holds_is_delayed_not_lost_and_runs_once(job, broker):
    # given a queued run whose message a worker fetched and then stopped with, for longer
    # than the lost-run age
    run = job_run_request(job=job.name, trigger="cli")
    consumer = broker.consume("default", prefetch=1, timeout=1_000)
    try:
        held = next(consumer)
        assert held.args == (run.pk,)
        age(run, LATER)

        # when the rescue runs, then the run is not re-sent
        assert runs_rescue() == {}

        # when the worker resumes, it runs the job once
        job_run_execute(run_id=run.pk, message_id=held.message_id)
        consumer.ack(held)
    finally:
        consumer.close()
    assert job.calls == [run.pk]
    assert JobRun.objects.get(pk=run.pk).repairs == []
