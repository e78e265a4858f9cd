"""The job runner: recording runs and attempts, retries, alerts, overlap, duplicates, takeover."""

import logging
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import dramatiq
import pytest
from django.conf import settings
from django.core import mail
from django.db import connection
from django.utils import timezone
from rest_framework import serializers

from jobs.actors import actor_for
from jobs.exceptions import PermanentError
from jobs.locks import job_lock
from jobs.middleware import shutdown_requested
from jobs.models import AttemptStatus, JobRun, JobRunAttempt, RunStatus
from jobs.params import IdListField
from jobs.runner import WORKER_LOST, job_run_execute
from jobs.services import job_run_request

AS_OF = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class BodyFailed(Exception):
    pass


@pytest.fixture
def alert_mail(settings):
    """Alerts go to one admin through Django's in-memory mail backend."""
    settings.ADMINS = [("Operators", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    return mail


def _wait_until_finished(run: JobRun, timeout: float = 30.0) -> JobRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_finished:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run #{run.pk} still {run.status} after {timeout}s")


def _in_thread(target) -> threading.Thread:
    """Run `target` in a thread with its own database connection, closed at the end."""

    def run() -> None:
        try:
            target()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _stop_worker(worker: dramatiq.Worker) -> None:
    worker.stop()
    assert not shutdown_requested.is_set(), "a stopped worker must not interrupt later runs"


@pytest.mark.django_db
def test_a_succeeding_run_records_its_outcome_and_its_attempt(register_test_job):
    # given a job whose body takes a little time and reports what it did
    def body(context):
        time.sleep(0.03)
        return {"items": 3, "as_of": context.as_of.isoformat(), "dry_run": context.dry_run}

    spec = register_test_job(body)
    run = job_run_request(enqueue=False, job=spec.name, trigger="cli", as_of=AS_OF, reason="test")
    assert run.status == RunStatus.QUEUED

    # when the runner executes it
    result = job_run_execute(run_id=run.pk)

    # then the run succeeded with the body's summary, its duration and the code version
    run.refresh_from_db()
    assert result.pk == run.pk
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary == {"items": 3, "as_of": AS_OF.isoformat(), "dry_run": False}
    assert run.duration_ms is not None and run.duration_ms >= 30
    assert run.started_at is not None and run.finished_at >= run.started_at
    assert run.code_version and run.code_version == settings.STEWARD_CODE_VERSION
    assert run.attempt_count == 1
    assert (run.error, run.traceback, run.status_reason) == ("", "", "")
    # and one succeeded attempt naming the worker
    attempt = run.attempts.get()
    assert attempt.number == 1
    assert attempt.status == AttemptStatus.SUCCEEDED
    assert attempt.finished_at is not None
    assert attempt.worker.startswith(f"{socket.gethostname()}:")


@pytest.mark.django_db
def test_a_body_that_reports_a_partial_failure_ends_partial_with_an_alert(
    register_test_job, alert_mail
):
    # given a job whose body reports that part of its work failed
    def body(context):
        context.mark_partial("game pong: no pool")
        return {"pools_finalized": 4}

    spec = register_test_job(body)
    run = job_run_request(enqueue=False, job=spec.name, trigger="cli")

    # when it runs
    run = job_run_execute(run_id=run.pk)

    # then the run is partial with the reason, and one alert went out
    assert run.status == RunStatus.PARTIAL
    assert run.status_reason == "game pong: no pool"
    assert run.summary == {"pools_finalized": 4}
    assert len(alert_mail.outbox) == 1
    assert f"run #{run.pk} partial" in alert_mail.outbox[0].subject


@pytest.mark.django_db(transaction=True)
def test_a_failing_run_is_retried_then_failed_with_every_attempt_kept_and_one_alert(
    broker, register_test_job, alert_mail, caplog
):
    # given a job whose body always raises, with 2 retries 10 ms apart, and a real worker
    calls = []

    def body(context):
        calls.append(context.run.attempt_count)
        raise BodyFailed(f"boom on attempt {context.run.attempt_count}")

    spec = register_test_job(body, max_retries=2, min_backoff_ms=10)
    actor_for(spec.name)
    caplog.set_level(logging.INFO)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        # when the run is sent to the worker and the worker has given up on it
        run = job_run_request(job=spec.name, trigger="cli", reason="retry test")
        run = _wait_until_finished(run)
    finally:
        _stop_worker(worker)

    # then there were three attempts, each kept with its own error and traceback
    assert calls == [1, 2, 3]
    attempts = list(JobRunAttempt.objects.filter(run=run).order_by("number"))
    assert [a.number for a in attempts] == [1, 2, 3]
    for number, attempt in enumerate(attempts, start=1):
        assert attempt.status == AttemptStatus.FAILED
        assert attempt.error == f"BodyFailed: boom on attempt {number}"
        assert "Traceback" in attempt.traceback
        assert f"boom on attempt {number}" in attempt.traceback
        assert attempt.finished_at is not None
        assert attempt.message_id == run.message_id
    # and the run failed with the last error and its traceback stored
    assert run.status == RunStatus.FAILED
    assert run.attempt_count == 3
    assert run.error == "BodyFailed: boom on attempt 3"
    assert "raise BodyFailed" in run.traceback
    assert run.finished_at is not None
    # and exactly one alert was mailed, with an ERROR line in the log
    assert len(alert_mail.outbox) == 1
    assert alert_mail.outbox[0].subject.endswith(f"job {spec.name} run #{run.pk} failed")
    assert alert_mail.outbox[0].to == ["ops@example.com"]
    alerts = [
        r for r in caplog.records if r.name == "steward.alerts" and r.levelno == logging.ERROR
    ]
    assert len(alerts) == 1
    assert f"run #{run.pk} failed" in alerts[0].getMessage()
    failures = [
        r
        for r in caplog.records
        if r.name == "steward.jobs" and r.levelno == logging.ERROR and "Job failed" in r.message
    ]
    assert len(failures) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "error",
    [PermanentError("this database cannot run the recompute"), OverflowError("date too far")],
    ids=["declared-permanent", "value-out-of-range"],
)
def test_an_error_no_retry_can_fix_fails_the_run_at_once_with_one_alert(
    broker, register_test_job, alert_mail, error
):
    # given a job whose body raises an error that retries cannot fix, with retries allowed
    calls = []

    def body(context):
        calls.append(context.run.attempt_count)
        raise error

    spec = register_test_job(body, max_retries=2, min_backoff_ms=10)
    actor_for(spec.name)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        # when a worker runs it
        run = _wait_until_finished(job_run_request(job=spec.name, trigger="cli"))
        dead_letters = f"{broker.namespace}:{spec.queue}.XQ"
        deadline = time.monotonic() + 10
        while not broker.client.zcard(dead_letters) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        _stop_worker(worker)

    # then its message went straight to the dead letters, no retry scheduled
    assert broker.client.zcard(dead_letters) == 1
    assert not broker.client.hlen(f"{broker.namespace}:{spec.queue}.DQ.msgs")
    # and it failed after one attempt, saying why it was not retried, with one alert
    assert calls == [1]
    assert (run.status, run.attempt_count) == (RunStatus.FAILED, 1)
    assert run.status_reason == (
        f"failed on attempt 1, not retried: no retry can fix {type(error).__name__}: {error}"
    )
    assert run.duration_ms is not None
    assert len(alert_mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_a_second_run_while_the_first_is_running_is_skipped_naming_the_first(register_test_job):
    # given a job whose body blocks until released
    started = threading.Event()
    release = threading.Event()

    def body(context):
        started.set()
        if not release.wait(timeout=30):
            raise TimeoutError("never released")
        return {"done": 1}

    spec = register_test_job(body)
    first = job_run_request(enqueue=False, job=spec.name, trigger="cli")
    second = job_run_request(enqueue=False, job=spec.name, trigger="api")

    # when the first run is executing and a second run of the same job starts
    first_thread = _in_thread(lambda: job_run_execute(run_id=first.pk))
    try:
        assert started.wait(timeout=10)
        second_thread = _in_thread(lambda: job_run_execute(run_id=second.pk))
        second_thread.join(timeout=30)
        assert not second_thread.is_alive()
        second.refresh_from_db()
        first.refresh_from_db()
        first_status_meanwhile = first.status
    finally:
        release.set()
        first_thread.join(timeout=30)

    # then the second run ended skipped, naming the run in progress, without an attempt
    assert second.status == RunStatus.SKIPPED
    assert second.status_reason == f"another run of {spec.name} is in progress (run #{first.pk})"
    assert second.finished_at is not None
    assert not second.attempts.exists()
    # and the first run was running all along and then succeeded
    assert first_status_meanwhile == RunStatus.RUNNING
    first.refresh_from_db()
    assert first.status == RunStatus.SUCCEEDED
    assert first.summary == {"done": 1}


class TargetParams(serializers.Serializer):
    item_ids = IdListField()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("concurrent_targets", "second_status"),
    [(True, RunStatus.SUCCEEDED), (False, RunStatus.SKIPPED)],
)
def test_a_targeted_run_has_its_own_lock_only_where_the_job_claims_rows_safely(
    register_test_job, concurrent_targets, second_status
):
    # given a full sweep of a job blocking inside its body, holding the job's lock
    started = threading.Event()
    release = threading.Event()

    def body(context):
        if not context.params:
            started.set()
            if not release.wait(timeout=30):
                raise TimeoutError("never released")
        return {"targets": len(context.params.get("item_ids", []))}

    spec = register_test_job(body, params=TargetParams, concurrent_targets=concurrent_targets)
    sweep = job_run_request(enqueue=False, job=spec.name, trigger="cli")
    targeted = job_run_request(
        enqueue=False, job=spec.name, trigger="api", params={"item_ids": [9, 3, 9]}
    )

    # when a targeted run starts while the sweep runs
    sweep_thread = _in_thread(lambda: job_run_execute(run_id=sweep.pk))
    try:
        assert started.wait(timeout=10)
        targeted_thread = _in_thread(lambda: job_run_execute(run_id=targeted.pk))
        targeted_thread.join(timeout=30)
        targeted.refresh_from_db()
    finally:
        release.set()
        sweep_thread.join(timeout=30)

    # then it ran beside the sweep where the job declares its rows safe to claim at once,
    # and was skipped behind the sweep's lock where it does not
    assert targeted.params == {"item_ids": [3, 9]}
    assert bool(targeted.lock_scope) is concurrent_targets
    assert targeted.status == second_status
    if concurrent_targets:
        assert targeted.summary == {"targets": 2}
    sweep.refresh_from_db()
    assert sweep.status == RunStatus.SUCCEEDED


@pytest.mark.django_db
def test_a_duplicate_message_for_a_finished_run_changes_nothing(register_test_job):
    # given a run that already succeeded
    calls = []

    def body(context):
        calls.append(context.run.pk)
        return {"calls": len(calls)}

    spec = register_test_job(body)
    run = job_run_request(enqueue=False, job=spec.name, trigger="cli")
    job_run_execute(run_id=run.pk)
    recorded = JobRun.objects.filter(pk=run.pk).values().get()
    attempts = list(JobRunAttempt.objects.filter(run=run).values())

    # when its message is delivered again
    again = job_run_execute(run_id=run.pk, message_id="duplicate")

    # then the body did not run again and the record is untouched
    assert calls == [run.pk]
    assert again.status == RunStatus.SUCCEEDED
    assert JobRun.objects.filter(pk=run.pk).values().get() == recorded
    assert list(JobRunAttempt.objects.filter(run=run).values()) == attempts


@pytest.mark.django_db
def test_a_run_left_running_by_a_dead_worker_is_taken_over_by_its_redelivery(
    register_test_job,
):
    # given a run whose worker died mid-attempt: running, with a running attempt, no lock held
    calls = []
    spec = register_test_job(lambda context: calls.append(context.run.pk) or {"items_done": 1})
    run = job_run_request(enqueue=False, job=spec.name, trigger="schedule", as_of=AS_OF)
    first_start = timezone.now() - timedelta(minutes=10)
    JobRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=first_start, attempt_count=1
    )
    JobRunAttempt.objects.create(
        run=run, number=1, started_at=first_start, worker="dead-host:1", message_id="m-1"
    )

    # when the message is delivered again
    result = job_run_execute(run_id=run.pk, message_id="m-1")

    # then the redelivery ran the job to success as a second attempt
    run.refresh_from_db()
    assert result.status == RunStatus.SUCCEEDED
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary == {"items_done": 1}
    assert calls == [run.pk]
    assert run.attempt_count == 2
    assert run.started_at == first_start
    # and the dead worker's attempt is closed as abandoned
    first, second = run.attempts.order_by("number")
    assert first.status == AttemptStatus.ABANDONED
    assert first.error == WORKER_LOST
    assert first.finished_at is not None
    assert second.status == AttemptStatus.SUCCEEDED
    assert second.number == 2


@pytest.mark.django_db
def test_another_run_left_running_by_a_dead_worker_is_closed_as_failed(
    alert_mail, register_test_job
):
    # given an earlier run of the job left running by a dead worker (its lock is gone)
    spec = register_test_job(lambda context: {"items_done": 1})
    lost = job_run_request(enqueue=False, job=spec.name, trigger="schedule", as_of=AS_OF)
    JobRun.objects.filter(pk=lost.pk).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), attempt_count=1
    )
    JobRunAttempt.objects.create(run=lost, number=1, started_at=timezone.now(), worker="dead:1")
    fresh = job_run_request(enqueue=False, job=spec.name, trigger="cli", as_of=AS_OF)

    # when a new run of the job takes the lock
    fresh = job_run_execute(run_id=fresh.pk)

    # then the new run succeeds and the lost one is failed, its attempt abandoned, alerted
    assert fresh.status == RunStatus.SUCCEEDED
    lost.refresh_from_db()
    assert lost.status == RunStatus.FAILED
    assert lost.error == WORKER_LOST
    assert lost.attempts.get().status == AttemptStatus.ABANDONED
    assert len(alert_mail.outbox) == 1
    assert f"run #{lost.pk} failed" in alert_mail.outbox[0].subject


@pytest.mark.django_db(transaction=True)
def test_a_redelivery_of_a_run_still_running_elsewhere_is_ignored(register_test_job):
    # given a run marked running whose job lock is held by another live process
    spec = register_test_job(lambda context: {"ran": True})
    run = job_run_request(enqueue=False, job=spec.name, trigger="cli")
    JobRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, started_at=timezone.now(), attempt_count=1
    )
    JobRunAttempt.objects.create(run=run, number=1, started_at=timezone.now(), worker="live:1")
    held = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with job_lock(spec.name) as lock:
            assert lock.acquired
            held.set()
            release.wait(timeout=30)

    holder = _in_thread(hold_lock)
    try:
        assert held.wait(timeout=10)

        # when its message is delivered a second time
        result = job_run_execute(run_id=run.pk)
    finally:
        release.set()
        holder.join(timeout=30)

    # then the run and its attempt are left as they were
    assert result.status == RunStatus.RUNNING
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert run.status_reason == ""
    assert run.attempts.get().status == AttemptStatus.RUNNING
