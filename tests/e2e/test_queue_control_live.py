"""Queue and run control with real worker and scheduler processes: pause, cancel, the urgent
lane, fleet-wide concurrency and rate limits, a drain on SIGTERM, and readiness."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from dramatiq import Message

from jobs.cancellation import job_run_cancel
from jobs.controls import (
    fleet_drain_end,
    fleet_drain_start,
    queue_concurrency_set,
    queue_pause,
    queue_resume,
    rate_limit_set,
)
from jobs.models import (
    FINISHED_STATUSES,
    AttemptStatus,
    JobRun,
    JobRunAttempt,
    RunStatus,
    WorkerHeartbeat,
)
from jobs.queues import queue_names, queue_stats
from jobs.services import job_run_request
from ledger.models import Escrow, Transfer
from ledger.statuses import EscrowStatus
from tests.factories import seeded_due_escrow_ids
from tests.invariants import assert_ledger_consistent
from tests.workers import WorkerProcess, subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

OPERATOR = "ops-alice"
# A published change reaches every worker within a second (`jobs.control_state`).
CONTROLS_REACH_WORKERS_SECONDS = 1.5


def wait_for(predicate, timeout=30.0, interval=0.05, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")


@pytest.fixture
def workers(broker, tmp_path):
    """Start worker processes at once: `workers(2, threads=4, env={...})`; all are stopped
    afterwards."""
    started: list[WorkerProcess] = []

    def start(count: int = 1, *, command: str = "rundramatiq", threads: int = 2, env=None):
        batch = [
            WorkerProcess(
                command=command,
                log_path=tmp_path / f"worker-{len(started) + index}.log",
                threads=threads,
                env=env,
            ).launch()
            for index in range(count)
        ]
        started.extend(batch)
        for worker in batch:
            worker.wait_ready()
        return batch

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(autouse=True)
def no_limiter_counts(broker):
    """The fleet-wide limiters count in Redis; a killed worker's slot would outlive its test."""
    for pattern in ("steward:queue-concurrency:*", "steward:*@*"):
        for key in broker.client.scan_iter(pattern):
            broker.client.delete(key)


def stats():
    return {queue.name: queue for queue in queue_stats()}


def released_count() -> int:
    return Escrow.objects.filter(status=EscrowStatus.RELEASED).count()


def all_finished(runs):
    ids = [run.pk for run in runs]
    return lambda: (
        not JobRun.objects.filter(pk__in=ids).exclude(status__in=FINISHED_STATUSES).exists()
    )


def statuses(runs):
    return sorted(JobRun.objects.filter(pk__in=[run.pk for run in runs]).values_list("status"))


def most_at_once(attempts) -> int:
    """The most attempts executing at the same moment."""
    edges = sorted(
        [(attempt.started_at, 1) for attempt in attempts]
        + [(attempt.finished_at, -1) for attempt in attempts]
    )
    running = most = 0
    for _at, change in edges:
        running += change
        most = max(most, running)
    return most


# --- pause -----------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_paused_queue_starts_nothing_on_either_lane_and_loses_nothing(workers):
    # given two worker processes, and the default queue paused
    workers(2)
    queue_pause(queue="default", by=OPERATOR, reason="maintenance")
    time.sleep(CONTROLS_REACH_WORKERS_SECONDS)

    # when runs of the queue are requested on both of its lanes (a targeted run is urgent)
    jobs = ("expire_matches", "cycle_reminders", "monitor_business_lag", "reconcile_ledger")
    runs = [job_run_request(job=job, trigger="api") for job in jobs]
    runs += [
        job_run_request(job="expire_matches", trigger="api", params={"match_ids": [number]})
        for number in (1, 2, 3)
    ]
    time.sleep(6)

    # then none has started, and each message is still in Redis
    assert statuses(runs) == [(RunStatus.QUEUED,)] * 7
    assert not JobRunAttempt.objects.exists()
    assert not JobRun.objects.filter(attempt_count__gt=0).exists()
    queues = stats()
    assert queues["default"].waiting + queues["default"].delayed == 4
    assert queues["default-urgent"].waiting + queues["default-urgent"].delayed == 3
    assert queues["default"].in_flight == queues["default-urgent"].in_flight == 0
    # while the other queues go on
    other = job_run_request(job="release_escrows", trigger="api")
    wait_for(all_finished([other]), message="a run of the money queue")

    # when the queue is resumed, every run succeeds
    queue_resume(queue="default", by=OPERATOR, reason="done")
    wait_for(all_finished(runs), message="the runs after the resume")
    assert statuses(runs) == [(RunStatus.SUCCEEDED,)] * 7
    queues = stats()
    assert sum(queues[name].waiting + queues[name].delayed for name in queues) == 0


# --- cancel ----------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_cancelling_a_queued_and_a_running_release_through_a_real_worker(workers):
    # given a worker releasing escrows ten at a time, and thousands of escrows due
    (worker,) = workers(1, env={"STEWARD_BATCH_SIZE": "10"})
    due = seeded_due_escrow_ids(3_000)

    # when a queued run is cancelled before a worker takes it
    queue_pause(queue="default", by=OPERATOR)
    time.sleep(CONTROLS_REACH_WORKERS_SECONDS)
    queued = job_run_request(job="expire_matches", trigger="api")
    assert job_run_cancel(run=queued.pk, by=OPERATOR).status == RunStatus.CANCELLED
    queue_resume(queue="default", by=OPERATOR)

    # then the worker acknowledges its message without running it
    wait_for(
        lambda: f"Run #{queued.pk} of expire_matches already cancelled" in worker.log_text(),
        message="the worker to see the cancelled run",
    )
    wait_for(lambda: sum(q.waiting + q.in_flight for q in stats().values()) == 0)
    queued.refresh_from_db()
    assert (queued.status, queued.attempt_count) == (RunStatus.CANCELLED, 0)

    # when a running release is cancelled part-way
    run = job_run_request(job="release_escrows", trigger="api")
    wait_for(lambda: released_count() >= 100, message="the first batches")
    asked = job_run_cancel(run=run.pk, by=OPERATOR, reason="wrong day")
    assert asked.status == RunStatus.RUNNING
    wait_for(all_finished([run]), message="the cancelled run to stop")

    # then it ended cancelled with who and why, keeping the batches it committed
    run.refresh_from_db()
    part = released_count()
    assert run.status == RunStatus.CANCELLED
    assert f"cancelled by {OPERATOR}: wrong day" in run.status_reason
    assert 0 < part < len(due)
    assert run.summary == {"escrows_done": part}
    assert run.attempts.get().status == AttemptStatus.CANCELLED
    assert_ledger_consistent()

    # when a later release runs, it releases the rest, each escrow once
    again = job_run_request(job="release_escrows", trigger="api")
    wait_for(all_finished([again]), message="the next release")
    again.refresh_from_db()
    assert again.status == RunStatus.SUCCEEDED
    assert again.summary["escrows_released"] == len(due) - part
    assert released_count() == len(due)
    assert Transfer.objects.filter(kind="escrow_release").count() == len(due)
    assert_ledger_consistent()


# --- lanes -----------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_an_urgent_run_starts_ahead_of_a_backlog_on_a_one_thread_worker(workers):
    # given a backlog of 100 runs in the default queue's normal lane
    backlog = [job_run_request(job="expire_matches", trigger="api") for _ in range(100)]
    assert stats()["default"].waiting == 100

    # when one single-threaded worker has started on it, an urgent run is requested
    workers(1, threads=1)
    wait_for(lambda: JobRunAttempt.objects.exists(), message="the backlog to start")
    urgent = job_run_request(job="expire_matches", trigger="api", urgent=True)

    # then the urgent run starts before the backlog's last one, and all succeed
    wait_for(all_finished([*backlog, urgent]), timeout=60, message="the backlog")
    assert statuses([*backlog, urgent]) == [(RunStatus.SUCCEEDED,)] * 101
    urgent_start = urgent.attempts.get().started_at
    backlog_starts = sorted(
        JobRunAttempt.objects.filter(run__in=backlog).values_list("started_at", flat=True)
    )
    assert urgent_start < backlog_starts[-1]
    later = sum(start > urgent_start for start in backlog_starts)
    assert later > 50, f"only {later} backlog runs started after the urgent one"


# --- concurrency and rate limits -------------------------------------------------------------


@pytest.mark.timeout(120)
def test_a_queue_concurrency_holds_across_two_workers_and_changes_at_run_time(workers):
    # given two workers of four threads, releasing one escrow per batch, and a concurrency of
    # 2 on the money queue (both lanes)
    fleet = workers(2, threads=4, env={"STEWARD_BATCH_SIZE": "1"})
    due = seeded_due_escrow_ids(600)
    queue_concurrency_set(queue="money", concurrency=2, by=OPERATOR)
    time.sleep(CONTROLS_REACH_WORKERS_SECONDS)

    # when ten targeted releases of 60 escrows each (about a second of work) are requested
    chunks = [due[start : start + 60] for start in range(0, 600, 60)]
    runs = [
        job_run_request(job="release_escrows", trigger="api", params={"escrow_ids": chunk})
        for chunk in chunks
    ]
    # and the limit is lowered to 1 once a few have ended
    wait_for(
        lambda: JobRun.objects.filter(pk__in=[r.pk for r in runs], status="succeeded").count() >= 2,
        message="the first runs",
    )
    queue_concurrency_set(queue="money", concurrency=1, by=OPERATOR, reason="bank is slow")
    lowered_at = timezone.now()
    wait_for(all_finished(runs), timeout=60, message="the releases")

    # then all succeeded, never more than 2 at once, and 1 at a time once the change arrived
    assert statuses(runs) == [(RunStatus.SUCCEEDED,)] * 10
    attempts = list(JobRunAttempt.objects.filter(run__in=runs))
    assert len(attempts) == 10
    assert most_at_once(attempts) == 2
    in_force = lowered_at + timedelta(seconds=CONTROLS_REACH_WORKERS_SECONDS)
    alone = [attempt for attempt in attempts if attempt.started_at > in_force]
    assert alone, "no run started after the limit was lowered"
    for attempt in alone:
        overlapping = [
            other
            for other in attempts
            if other.pk != attempt.pk
            and other.started_at < attempt.finished_at
            and attempt.started_at < other.finished_at
        ]
        assert not overlapping, f"attempt of run #{attempt.run_id} overlapped {overlapping}"
    assert released_count() == 600
    assert_ledger_consistent()
    # and the runs held back at the limit left no "skipped" warnings in the workers' logs
    for worker in fleet:
        assert "was skipped" not in worker.log_text()


@pytest.mark.timeout(120)
def test_a_queue_rate_limit_holds_across_two_workers(workers):
    # given two workers of four threads, and at most 4 runs of the default queue per 2 s
    workers(2, threads=4)
    rate_limit_set(name="default", limit=4, window_seconds=2, by=OPERATOR)
    time.sleep(CONTROLS_REACH_WORKERS_SECONDS)

    # when twelve runs that could all run at once are requested (targeted: the urgent lane)
    runs = [
        job_run_request(job="expire_matches", trigger="api", params={"match_ids": [number]})
        for number in range(1, 13)
    ]
    wait_for(all_finished(runs), timeout=60, message="the rate-limited runs")

    # then all succeeded, spread out by the limit: a window of two one-second buckets takes 4
    # starts, so no 0.8 s (allowing a start's 0.2 s after its slot) sees more than 4
    assert statuses(runs) == [(RunStatus.SUCCEEDED,)] * 12
    starts = sorted(JobRunAttempt.objects.filter(run__in=runs).values_list("started_at", flat=True))
    assert len(starts) == 12
    for start in starts:
        window = [other for other in starts if start <= other < start + timedelta(seconds=0.8)]
        assert len(window) <= 4, f"{len(window)} starts within 0.8 s of {start}"
    # twelve at 4 per 2 s take at least three windows
    assert starts[-1] - starts[0] > timedelta(seconds=2.5)


# --- drain on SIGTERM ------------------------------------------------------------------------


def money_messages(broker) -> list[Message]:
    return [
        Message.decode(payload)
        for name in ("money", "money.DQ")
        for payload in broker.client.hvals(f"{broker.namespace}:{name}.msgs")
    ]


@pytest.mark.timeout(120)
def test_a_worker_stopped_mid_release_hands_the_run_back_and_exits_0(workers, broker):
    # given `runworker` with a 10 s shutdown timeout, releasing a backlog 20 escrows at a time
    (worker,) = workers(
        1, command="runworker", env={"STEWARD_SHUTDOWN_TIMEOUT": "10", "STEWARD_BATCH_SIZE": "20"}
    )
    due = seeded_due_escrow_ids(6_000)
    run = job_run_request(job="release_escrows", trigger="api")
    wait_for(lambda: released_count() > 0, message="the first batches")

    # when it gets SIGTERM mid-run
    worker.signal(signal.SIGTERM)
    stopping_at = time.monotonic()
    seen_draining = False
    while worker.process.poll() is None and time.monotonic() - stopping_at < 15:
        seen_draining |= WorkerHeartbeat.objects.filter(draining=True).exists()
        time.sleep(0.01)
    stopped_in = time.monotonic() - stopping_at

    # then it said it was draining, exited 0 within the timeout and its heartbeat is gone
    assert worker.process.returncode == 0, worker.log_text()
    assert stopped_in < 10
    assert seen_draining
    assert not WorkerHeartbeat.objects.exists()

    # and the run is handed back: queued, its attempt abandoned, its message re-sent with no
    # retry spent, each batch released once
    run.refresh_from_db()
    part = released_count()
    assert 0 < part < len(due)
    assert run.status == RunStatus.QUEUED
    assert "handed back: worker shutting down" in run.status_reason
    attempt = run.attempts.get()
    assert attempt.status == AttemptStatus.ABANDONED
    assert "worker shutting down" in attempt.error
    (message,) = money_messages(broker)
    assert message.message_id == run.message_id
    assert message.options.get("retries", 0) == 0
    assert_ledger_consistent()

    # when another worker comes, it finishes the release: every escrow released once
    workers(1)
    wait_for(all_finished([run]), timeout=60, message="the handed-back run")
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary["escrows_released"] == len(due) - part
    assert [a.status for a in run.attempts.order_by("number")] == [
        AttemptStatus.ABANDONED,
        AttemptStatus.SUCCEEDED,
    ]
    assert released_count() == len(due)
    assert_ledger_consistent()


# --- readiness -------------------------------------------------------------------------------


@pytest.fixture
def scheduler(tmp_path):
    """A real `manage.py runscheduler`."""
    log = open(tmp_path / "scheduler.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runscheduler"],
        cwd=settings.BASE_DIR,
        env=subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: WorkerHeartbeat.objects.filter(role=WorkerHeartbeat.Role.SCHEDULER).exists(),
            timeout=60,
            message="the scheduler's heartbeat",
        )
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def readyz():
    response = Client().get("/readyz")
    return response.status_code, response.json()


@pytest.mark.timeout(120)
def test_readyz_follows_the_real_fleet(workers, scheduler):
    # given a real worker and a real scheduler
    (worker,) = workers(1)

    # then the fleet is ready, every check passing
    status, body = readyz()
    assert status == 200, body
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "redis", "scheduler", "workers", "draining"}
    assert all(check["ok"] for check in body["checks"].values())

    # when the fleet drains, it is not ready, saying so
    fleet_drain_start(by=OPERATOR, reason="deploy")
    status, body = readyz()
    assert status == 503
    assert body["status"] == "not ready"
    assert not body["checks"]["draining"]["ok"]
    assert "draining" in body["checks"]["draining"]["detail"]
    fleet_drain_end(by=OPERATOR)
    assert readyz()[0] == 200

    # when the only worker stops, it names the queues nobody serves
    worker.stop()
    status, body = readyz()
    assert status == 503
    workers_check = body["checks"]["workers"]
    assert not workers_check["ok"]
    for queue in queue_names():
        assert queue in workers_check["detail"]
    assert body["checks"]["scheduler"]["ok"]
