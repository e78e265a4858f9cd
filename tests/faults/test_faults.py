"""Fault injection with real PostgreSQL, a private Redis, and real worker and scheduler processes.

Every scenario ends in `conclude`: the reconciliation runs on a worker and the invariants are
measured (for the table `make faults` prints) and asserted: no duplicate money effect, no due
work left undone, every asset conserved, one run per schedule slot, and every balance equal to
the workload's own model.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta

import dramatiq
import psycopg
import pytest
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from jobs.actors import actor_for
from jobs.audit import control_actions
from jobs.cancellation import job_run_cancel
from jobs.controls import queue_pause, queue_resume
from jobs.models import (
    FINISHED_STATUSES,
    AttemptStatus,
    ControlAction,
    JobRun,
    JobRunAttempt,
    RunStatus,
    Schedule,
    Trigger,
)
from jobs.registry import all_jobs
from jobs.schedules import schedule_update
from jobs.services import job_run_request
from ledger.models import Escrow
from ledger.services.escrows import escrows_due
from ledger.statuses import EscrowStatus
from tests.faults.fleet import Fleet, run_and_wait, wait_finished
from tests.faults.harness import StewardProcess, backends, blocked_by, rows_locked, wait_for
from tests.faults.profile import current_profile
from tests.faults.verdict import conclude
from tests.faults.workload import Workload
from tests.workers import test_database_url


def every_minute(*jobs: str) -> None:
    """The jobs' default schedules tick every minute from now on (schedules are rows)."""
    for schedule in Schedule.objects.filter(name__in=jobs):
        schedule_update(schedule=schedule, by="fault suite", cron="* * * * *")


PROFILE = current_profile()
pytestmark = [
    pytest.mark.faults,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(900),
]

LOCK_WALLETS = "SELECT id FROM ledger_wallet WHERE id = ANY(%s) FOR UPDATE"
MINUTE = timedelta(minutes=1)


@contextmanager
def follow_up_in_flight(run: JobRun, job: str) -> Iterator[None]:
    """The run's follow-up of `job`, inserted and not committed by a connection of our own
    until the block ends: once the run's outcome has committed, the worker's own request of
    that follow-up waits for it (one follow-up per job and run)."""
    override = {"job": "%s", "trigger": "%s", "status": "%s", "follow_up_of_id": "id"}
    values = {"job": job, "trigger": Trigger.FOLLOW_UP, "status": RunStatus.QUEUED}
    columns = [field.column for field in JobRun._meta.concrete_fields if field.column != "id"]
    with psycopg.connect(test_database_url(), autocommit=False) as blocker:
        blocker.execute(
            f"INSERT INTO jobs_jobrun ({', '.join(columns)}) "
            f"SELECT {', '.join(override.get(column, column) for column in columns)} "
            "FROM jobs_jobrun WHERE id = %s",
            [*(values[column] for column in columns if column in values), run.pk],
        )
        try:
            yield
        finally:
            blocker.rollback()


def released_by(run: JobRun) -> int:
    return Escrow.objects.filter(released_by_run=run).count()


def runner_of(run: JobRun, fleet: Fleet) -> StewardProcess:
    """The worker process executing the run's latest attempt."""
    attempt = wait_for(
        lambda: run.attempts.order_by("-number").first(), timeout=30, message="an attempt"
    )
    pid = int(attempt.worker.rsplit(":", 1)[1])
    return next(p for p in fleet.processes.values() if pid in p.pids())


def blocked_on_lock(process: StewardProcess, *, table: str = "", wrote: bool = False) -> bool:
    """Whether one of the process's backends waits for a row lock: in a statement on `table`,
    and with `wrote`, inside a transaction that has already written."""
    return any(
        backend["waiting"] == "Lock" and table in backend["query"] and backend["wrote"] >= wrote
        for backend in backends(process.application_name)
    )


def enqueue_release(reason: str, **options) -> JobRun:
    return job_run_request(job="release_escrows", trigger="cli", reason=reason, **options)


@contextmanager
def workload_running(workload: Workload, *, horizon: timedelta) -> Iterator[None]:
    """The workload's operations on a background thread for the length of the block."""
    stop = threading.Event()
    thread = threading.Thread(
        target=workload.run_until, args=(stop,), kwargs={"horizon": horizon, "pause": 0.2}
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def test_1_sigkill_inside_a_batch_and_after_commit_before_the_ack(fleet):
    started = time.monotonic()
    workload = Workload(label="kill")
    workload.open_wallets(40)
    worker = fleet.worker("w0")
    for round_number in range(PROFILE.kills):
        # given due escrows, and every wallet row locked by another transaction
        workload.backlog(300)
        wallet_ids = [wallet.pk for wallet in workload.wallets]
        with rows_locked(LOCK_WALLETS, [wallet_ids]):
            run = enqueue_release("SIGKILL inside a batch transaction")
            # when the worker has changed its first batch's escrows and waits for the wallets
            wait_for(
                lambda w=worker: blocked_on_lock(w, table="ledger_wallet", wrote=True),
                timeout=30,
                message="the worker inside its batch transaction",
            )
            fleet.kill(worker)
        wait_for(
            lambda w=worker: not backends(w.application_name),
            timeout=30,
            message="the killed worker's database sessions to end",
        )
        # then none of the batch was committed
        assert released_by(run) == 0
        # and a new worker is given the message once the dead one's heartbeat is stale, and
        # takes the run over
        worker = fleet.worker(f"w{round_number}a")
        run = wait_finished(run.pk)
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert list(run.attempts.values_list("status", flat=True)) == [
            AttemptStatus.ABANDONED,
            AttemptStatus.SUCCEEDED,
        ]

        # given a run in progress whose follow-up's row is being inserted elsewhere
        workload.backlog(1_000)
        run = enqueue_release("SIGKILL after commit, before the ack")
        wait_for(lambda r=run: r.attempts.exists(), timeout=30, message="the run to start")
        with follow_up_in_flight(run, "check_milestones"):
            # when the run's outcome has committed and the worker waits to request its
            # follow-up, before its message is acknowledged
            wait_for(
                lambda r=run, w=worker: (
                    JobRun.objects.get(pk=r.pk).status == RunStatus.SUCCEEDED
                    and blocked_on_lock(w, table="jobs_jobrun")
                ),
                timeout=300,
                message="the run to commit its outcome",
            )
            fleet.kill(worker)
        # then the unacknowledged message comes back and finds its run finished
        seen = fleet.duplicates_seen()
        worker = fleet.worker(f"w{round_number}b")
        wait_for(
            lambda n=seen: fleet.duplicates_seen() > n,
            timeout=60,
            message="the redelivered message",
        )
        assert JobRun.objects.get(pk=run.pk).attempts.count() == 1

    conclude("1. SIGKILL mid-batch / before ack", fleet=fleet, workload=workload, started=started)


@pytest.mark.timeout(PROFILE.slots * 60 + 420)
def test_2_two_workers_and_two_schedulers_in_compressed_time(fleet):
    started = time.monotonic()
    # given every money job ticking each minute, obligations due as soon as they start, two
    # workers and two schedulers
    every_minute("release_escrows", "expire_matches", "cycle_reminders", "reconcile_ledger")
    env = {"CYCLE_DUE_DAYS": "0"}
    fleet.workers("w1", "w2", **env)
    schedulers = fleet.schedulers("s1", "s2", **env)
    first_slot = timezone.now().replace(second=0, microsecond=0)
    last_slot = first_slot + PROFILE.slots * MINUTE
    workload = Workload(label="fleet")
    workload.open_wallets(30)
    workload.backlog(100)
    workload.backlog(50, due=False)

    # when a workload donates, matches, accepts and fulfils with holds and expiries ending
    # within the scenario, and one scheduler is restarted now and then
    stop = threading.Event()
    horizon = (last_slot - timezone.now()) - timedelta(seconds=5)
    thread = threading.Thread(
        target=workload.run_until, args=(stop,), kwargs={"horizon": horizon, "pause": 0.2}
    )
    thread.start()
    try:
        for restart in range(PROFILE.scheduler_restarts):
            at = first_slot + (restart + 1) * (last_slot - first_slot) / (
                PROFILE.scheduler_restarts + 1
            )
            time.sleep(max(0.0, (at - timezone.now()).total_seconds()))
            fleet.restart(schedulers[restart % 2])
            fleet.faults += 1
        wait_for(
            lambda: JobRun.objects.filter(
                job="release_escrows", slot__gte=last_slot, status=RunStatus.SUCCEEDED
            ).exists(),
            timeout=(last_slot - timezone.now()).total_seconds() + 90,
            message=f"the run of slot {last_slot:%H:%M}",
            interval=1,
        )
    finally:
        stop.set()
        thread.join(timeout=30)
        for scheduler in schedulers:
            scheduler.stop()

    # then both schedulers ticked, and every reconciliation on the way found the books clean
    for scheduler in schedulers:
        assert "tick_schedules" in scheduler.log_text()
    slots = JobRun.objects.filter(job="release_escrows", slot__isnull=False).count()
    assert slots >= PROFILE.slots
    assert not JobRun.objects.filter(job="reconcile_ledger", status=RunStatus.PARTIAL).exists()
    conclude(
        "2. two workers + two schedulers",
        fleet=fleet,
        workload=workload,
        started=started,
        slots=slots,
    )


def test_3_a_stopped_worker_s_message_is_redelivered_while_it_still_runs(fleet):
    started = time.monotonic()
    workload = Workload(label="stop")
    workload.open_wallets(40)
    fleet.workers("w1", "w2")
    for _ in range(PROFILE.stops):
        # given a long release in progress on one of two workers
        workload.backlog(PROFILE.backlog)
        run = enqueue_release("SIGSTOP longer than the heartbeat timeout")
        wait_for(lambda r=run: released_by(r) > 0, timeout=60, message="the first batches")
        runner = runner_of(run, fleet)

        # when that worker is stopped past the heartbeat timeout
        seen = fleet.duplicates_seen()
        fleet.pause(runner)
        frozen = released_by(run)
        # then the other worker is given the same message while the run still runs, and
        # leaves it alone
        wait_for(
            lambda n=seen: fleet.duplicates_seen() > n,
            timeout=PROFILE.heartbeat_timeout_ms / 1000 + 30,
            message="the redelivered duplicate",
        )
        assert released_by(run) == frozen
        assert JobRun.objects.get(pk=run.pk).status == RunStatus.RUNNING

        # when the stopped worker continues, it finishes the run alone
        fleet.resume(runner)
        run = wait_finished(run.pk)
        assert run.status == RunStatus.SUCCEEDED
        assert run.attempts.count() == 1

    conclude("3. SIGSTOP past the heartbeat", fleet=fleet, workload=workload, started=started)


def test_4_the_same_run_message_sent_twice_at_once(fleet):
    started = time.monotonic()
    workload = Workload(label="twice")
    workload.open_wallets(40)
    fleet.workers("w1", "w2")
    broker = dramatiq.get_broker()
    for _ in range(PROFILE.duplicate_sends):
        # given due escrows and one recorded run
        workload.backlog(200)
        run = job_run_request(
            enqueue=False, job="release_escrows", trigger="cli", reason="sent twice"
        )
        message = actor_for("release_escrows").message(run.pk)
        seen = fleet.duplicates_seen()

        # when its message is enqueued twice, back to back, for two idle workers
        broker.enqueue(message)
        broker.enqueue(message)
        fleet.faults += 1

        # then one delivery runs it and the other finds it running or finished
        run = wait_finished(run.pk)
        wait_for(
            lambda n=seen: fleet.duplicates_seen() > n,
            timeout=30,
            message="the second delivery",
        )
        # (a delivery that loses the job's lock waits for the holder to show itself, so it
        # never skips the run its own duplicate is starting)
        assert run.status == RunStatus.SUCCEEDED, run.status_reason
        assert run.attempts.count() == 1

    conclude(
        "4. one run message sent twice",
        fleet=fleet,
        workload=workload,
        started=started,
    )


@pytest.mark.timeout(PROFILE.redis_restarts * 120 + 300)
def test_5_redis_restarted_without_persistence_while_messages_are_queued(fleet):
    started = time.monotonic()
    every_minute("release_escrows", "expire_matches")
    # Runs whose messages the restart lost are re-sent, or closed as lost, by rescue_runs.
    env = {"STEWARD_LOST_RUN_AFTER": "20"}
    worker = fleet.worker("w1", **env)
    fleet.schedulers("s1", **env)
    workload = Workload(label="redis")
    workload.open_wallets(30)
    lost: set[int] = set()
    for _ in range(PROFILE.redis_restarts):
        # given due escrows and stale matches, and the worker held still so runs stay queued
        workload.backlog(200)
        for _ in range(20):
            workload.propose_match(expires_in=-timedelta(minutes=5))
        worker.signal_group(signal.SIGSTOP)
        for job in ("release_escrows", "expire_matches", "cycle_reminders"):
            job_run_request(job=job, trigger="cli", reason="queued before a Redis restart")
        assert sum(fleet.redis.client().llen(f"dramatiq:{q}") for q in ("default", "money")) >= 3

        # when Redis restarts without persistence, and the worker goes on
        lost |= set(JobRun.objects.filter(status=RunStatus.QUEUED).values_list("pk", flat=True))
        restarted_at = timezone.now()
        fleet.restart_redis()
        worker.signal_group(signal.SIGCONT)

        # then the queued runs are lost, and the scheduler's next ticks repair their work
        next_slot = restarted_at.replace(second=0, microsecond=0) + MINUTE
        for job in ("release_escrows", "expire_matches"):
            wait_for(
                lambda j=job, s=next_slot: JobRun.objects.filter(
                    job=j, slot__gte=s, status=RunStatus.SUCCEEDED
                ).exists(),
                timeout=(next_slot - timezone.now()).total_seconds() + 90,
                message=f"{job}'s first slot after the restart",
                interval=1,
            )

    conclude(
        "5. Redis restarted, queue lost",
        fleet=fleet,
        workload=workload,
        started=started,
        lost_runs=frozenset(lost),
    )


def test_6_workers_database_sessions_terminated_mid_run(fleet):
    started = time.monotonic()
    workload = Workload(label="pgkill")
    workload.open_wallets(40)
    workers = fleet.workers("w1", "w2")
    terminated = 0
    for _ in range(PROFILE.terminations):
        # given a long release in progress
        workload.backlog(PROFILE.backlog)
        run = enqueue_release("pg_terminate_backend mid-run")
        wait_for(lambda r=run: released_by(r) > 0, timeout=60, message="the first batches")

        # when every database session of both workers is terminated
        terminated += fleet.terminate_backends(*workers)

        # then the run is retried and finishes, on workers that were never restarted
        run = wait_finished(run.pk)
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert run.attempts.count() >= 2
    assert all(worker.alive for worker in workers)

    conclude(
        "6. pg_terminate_backend mid-run",
        fleet=fleet,
        workload=workload,
        started=started,
        backends_terminated=terminated,
    )


def test_7_a_poison_escrow_among_good_ones(fleet):
    started = time.monotonic()
    fleet.worker("w1", STEWARD_BATCH_SIZE="10")
    workload = Workload(label="poison")
    good = workload.open_wallets(20)
    workload.backlog(55)
    # given one due escrow whose recipient's receivable balance was tampered below its amount
    (victim,) = workload.open_wallets(1)
    poison = workload.donate(due_in=-MINUTE, recipient=victim, donor=good[0])
    for donor in good[1:5]:
        workload.donate(due_in=-MINUTE, donor=donor, recipient=good[5])
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ledger_wallet SET receivable_balance = receivable_balance - 1 WHERE id = %s",
            [victim.pk],
        )
    fleet.faults += 1

    # when the release runs
    run = run_and_wait("release_escrows", reason="a poison escrow among good ones")

    # then the good escrows are released, the poison one is reported, and the run says so
    assert run.status == RunStatus.PARTIAL
    assert run.summary["escrows_released"] == 59
    assert run.summary["escrows_failed"] == 1
    assert run.summary["failed_escrows"][0]["escrow_id"] == poison.pk
    assert "wallet_receivable_not_negative" in run.summary["failed_escrows"][0]["error"]
    assert f"ids {poison.pk}" in run.status_reason
    assert Escrow.objects.get(pk=poison.pk).status == EscrowStatus.HOLDING
    assert f"release_escrows run #{run.pk} partial" in fleet.worker_logs()
    # and the reconciliation finds the tampered account
    report = run_and_wait("reconcile_ledger", reason="after the poison run")
    assert report.status == RunStatus.PARTIAL
    assert f"wallet:{victim.pk}:receivable" in str(report.summary)

    # when an operator repairs the balance, the next run releases the escrow
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE ledger_wallet SET receivable_balance = receivable_balance + 1 WHERE id = %s",
            [victim.pk],
        )
    repaired = run_and_wait("release_escrows", reason="after the repair")
    assert repaired.status == RunStatus.SUCCEEDED
    assert repaired.summary["escrows_released"] == 1

    conclude(
        "7. poison row among good ones",
        fleet=fleet,
        workload=workload,
        started=started,
        poison_run=run.summary["failed_escrows"],
    )


def test_8_sigkill_and_a_broker_flush_mid_fan_out(fleet):
    started = time.monotonic()
    env = {
        "STEWARD_FANOUT_THRESHOLD": str(PROFILE.shard_size),
        "STEWARD_SHARD_SIZE": str(PROFILE.shard_size),
    }
    workload = Workload(label="fanout")
    workload.open_wallets(60)
    # given a release fanned out into shards, part of them done when the worker is killed
    workload.backlog(PROFILE.fan_out_backlog)
    worker = fleet.worker("w1", **env)
    parent = enqueue_release("SIGKILL and a broker flush mid fan-out")
    wait_for(
        lambda: (
            parent.shards.filter(status=RunStatus.SUCCEEDED).count() >= 2
            and parent.shards.filter(status=RunStatus.RUNNING).exists()
        ),
        timeout=120,
        message="shards done and shards running",
    )
    fleet.kill(worker)
    fleet.redis.client().flushall()
    fleet.faults += 1
    shards_open = parent.shards.exclude(status__in=FINISHED_STATUSES).count()

    # when a new worker and the scheduler (whose minute tick runs rescue_runs) start and the
    # next release is requested, with default time limits
    fleet.worker("w2", **env)
    restarted = time.monotonic()
    fleet.schedulers("s1", **env)
    follow_up = enqueue_release("the next release after the crash")

    # then every due escrow is released within 3 minutes: the dead worker's shards are taken
    # back (by the next run, or by the rescue once the dead sessions' locks are gone), the
    # flushed ones re-sent, and the parent ends once they have
    parent = wait_finished(parent.pk, timeout=180)
    repaired_in = round(time.monotonic() - restarted, 1)
    assert parent.status == RunStatus.SUCCEEDED, parent.status_reason
    assert escrows_due(as_of=parent.as_of).count() == 0
    follow_up = wait_finished(follow_up.pk, timeout=60)
    assert any(shard.repairs for shard in parent.shards.all())

    conclude(
        "8. SIGKILL + broker flush mid fan-out",
        fleet=fleet,
        workload=workload,
        started=started,
        shards=parent.shards.count(),
        shards_open_at_the_crash=shards_open,
        seconds_to_repair=repaired_in,
        next_run=follow_up.status,
    )


OPERATOR = "fault suite"
# A worker reads the published controls at most once a second; a pause is obeyed after this.
PAUSE_REACHES_WORKERS = timedelta(seconds=2)


def cancel_in_background(run: JobRun, *, reason: str) -> Future:
    """`job_run_cancel` on a thread of its own: it may wait for the batch the run is in."""

    def cancel() -> JobRun:
        try:
            return job_run_cancel(run=run.pk, by=OPERATOR, reason=reason)
        finally:
            connection.close()

    executor = ThreadPoolExecutor(max_workers=1)
    future = executor.submit(cancel)
    executor.shutdown(wait=False)
    return future


def money_attempts_started(since: datetime, until: datetime) -> int:
    """Attempts of the money queue's runs (either lane) that started in [since, until)."""
    money_jobs = [spec.name for spec in all_jobs() if spec.queue == "money"]
    return JobRunAttempt.objects.filter(
        run__job__in=money_jobs, started_at__gte=since, started_at__lt=until
    ).count()


def test_9_a_queue_paused_and_resumed_and_a_run_cancelled_mid_release(fleet):
    started = time.monotonic()
    batch_size = PROFILE.cancel_batch_size
    fleet.workers("w1", "w2", STEWARD_BATCH_SIZE=str(batch_size))
    workload = Workload(label="control")
    workload.open_wallets(40)
    # The cancelled release's last escrows go between these two, outside the random pairs.
    donor, recipient = workload.open_wallets(2, pooled=False)
    horizon = timedelta(seconds=PROFILE.pause_seconds + 4)
    pauses, cancels = [], []
    with workload_running(workload, horizon=horizon):
        for _ in range(PROFILE.control_rounds):
            # given escrows due, and a workload donating, matching, accepting and fulfilling
            workload.backlog(100)

            # when the money queue is paused, and once the workers know, releases are
            # requested on both of its lanes (a targeted one is urgent)
            queue_pause(queue="money", by=OPERATOR, reason="fault suite: paused under load")
            paused_at = timezone.now()
            fleet.faults += 1
            time.sleep(PAUSE_REACHES_WORKERS.total_seconds())
            targets = list(escrows_due(as_of=timezone.now()).values_list("pk", flat=True)[:5])
            held = [
                enqueue_release("requested while money is paused"),
                enqueue_release(
                    "a targeted release while money is paused", params={"escrow_ids": targets}
                ),
            ]
            time.sleep(max(0.0, PROFILE.pause_seconds - PAUSE_REACHES_WORKERS.total_seconds()))

            # then no money run started while paused, and the runs requested meanwhile wait
            resumed_at = timezone.now()
            started_while_paused = money_attempts_started(
                paused_at + PAUSE_REACHES_WORKERS, resumed_at
            )
            assert started_while_paused == 0
            assert not JobRunAttempt.objects.filter(run__in=held).exists()
            assert all(
                status == RunStatus.QUEUED
                for status in JobRun.objects.filter(pk__in=[r.pk for r in held]).values_list(
                    "status", flat=True
                )
            )

            # when the queue is resumed, then every run held back runs, on both lanes
            queue_resume(queue="money", by=OPERATOR, reason="fault suite: resumed")
            held = [wait_finished(run.pk, timeout=120) for run in held]
            assert [run.status for run in held] == [RunStatus.SUCCEEDED] * 2, [
                run.status_reason for run in held
            ]
            # (the targeted run is urgent; the sweep beside it may release its escrows first)
            assert held[1].urgent
            released = Escrow.objects.filter(
                pk__in=targets, status=EscrowStatus.RELEASED, released_by_run__in=held
            )
            assert released.count() == len(targets)
            first_start = min(run.started_at for run in held)
            pauses.append(
                {
                    "paused_seconds": round((resumed_at - paused_at).total_seconds(), 1),
                    "money_attempts_started_while_paused": started_while_paused,
                    "seconds_from_resume_to_first_start": round(
                        (first_start - resumed_at).total_seconds(), 1
                    ),
                }
            )

            # given a release of many small batches under way, held inside one of them by a
            # lock on the wallets of the escrows due last
            workload.backlog(PROFILE.cancel_backlog)
            workload.backlog(PROFILE.cancel_backlog // 2, donor=donor, recipient=recipient)
            due = escrows_due(as_of=timezone.now()).count()
            with rows_locked(LOCK_WALLETS, [[donor.pk, recipient.pk]]) as locker:
                run = enqueue_release("cancelled mid-release")
                runner = runner_of(run, fleet)
                wait_for(
                    lambda w=runner, pid=locker: blocked_by(w.application_name, pid),
                    timeout=180,
                    message="the run inside a batch on the locked wallets",
                )
                committed = released_by(run)
                assert committed >= batch_size

                # when an operator cancels it
                cancel = cancel_in_background(run, reason="fault suite: cancelled")
                fleet.faults += 1
                time.sleep(0.5)
                cancel_waited = not cancel.done()
            asked = cancel.result(timeout=30)

            # then it stays running until its next batch boundary, and ends cancelled, with
            # who and why, keeping every batch it committed, the one it was in included
            assert asked.status == RunStatus.RUNNING
            run = wait_finished(run.pk, timeout=60)
            kept = released_by(run)
            assert run.status == RunStatus.CANCELLED, run.status_reason
            assert run.cancel_requested_by == OPERATOR
            assert "fault suite: cancelled" in run.status_reason
            assert run.summary == {"escrows_done": kept}
            assert committed < kept <= committed + 2 * batch_size
            assert kept < due
            assert list(run.attempts.values_list("status", flat=True)) == [AttemptStatus.CANCELLED]

            # and the next release releases the rest
            rest = run_and_wait("release_escrows", reason="after a cancelled release")
            assert rest.status == RunStatus.SUCCEEDED, rest.status_reason
            assert escrows_due(as_of=rest.as_of).count() == 0
            cancels.append(
                {
                    "run": run.pk,
                    "escrows_due": due,
                    "escrows_committed_at_the_cancel": committed,
                    "escrows_kept": kept,
                    "cancel_waited_for_the_batch": cancel_waited,
                    "released_by_the_next_run": released_by(rest),
                }
            )

    # every control action is in the audit trail
    audited = dict(ControlAction.objects.values_list("action").annotate(n=Count("pk")).order_by())
    rounds = PROFILE.control_rounds
    assert audited == {
        ControlAction.Action.QUEUE_PAUSED: rounds,
        ControlAction.Action.QUEUE_RESUMED: rounds,
        ControlAction.Action.RUN_CANCELLED: rounds,
    }
    assert control_actions(target="money").count() == 2 * rounds

    # once the holds the workload made to end within its horizon have ended (an accepted
    # match's hold is the full 48 hours), a last release sweeps them all
    soon = timezone.now() + horizon
    last_hold = max(h for e in workload.escrows.values() if (h := e.hold_until) <= soon)
    time.sleep(max(0.0, (last_hold - timezone.now()).total_seconds() + 1))
    final = run_and_wait("release_escrows", reason="end of the pause and cancel scenario")
    assert final.status == RunStatus.SUCCEEDED, final.status_reason

    conclude(
        "9. queue paused/resumed, run cancelled",
        fleet=fleet,
        workload=workload,
        started=started,
        paused_window_obeyed=all(
            pause["money_attempts_started_while_paused"] == 0 for pause in pauses
        ),
        cancelled_runs_kept_their_batches=all(cancel["escrows_kept"] > 0 for cancel in cancels),
        pauses=pauses,
        cancels=cancels,
    )
