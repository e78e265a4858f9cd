"""`manage.py drain`: the fleet stops taking messages, the command waits for the runs executing
(exit 0 once none is, 1 naming them at the timeout), `--end` lets the workers take messages
again, and `--status` tells which it is without changing anything."""

import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jobs.controls import fleet_drain_start
from jobs.fleet import fleet_draining, runs_executing
from jobs.models import ControlAction, FleetState, JobRun, RunStatus, Trigger
from jobs.services import job_run_request
from tests.factories import seeded_due_escrow_ids
from tests.workers import WorkerProcess, manage_py


def _drain(*args: str) -> str:
    out = StringIO()
    call_command("drain", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def wait_for(predicate, *, timeout: float = 60.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")


def _finished(run: JobRun):
    return lambda: JobRun.objects.get(pk=run.pk).is_finished


@pytest.mark.django_db
def test_drain_with_nothing_executing_is_drained_at_once_until_ended():
    # when the fleet is drained with no run executing, then the drain ended
    drained = _drain("--timeout", "0", "--by", "deploy", "--reason", "release 42")
    draining_while_on = fleet_draining() is not None
    ended = _drain("--end", "--by", "deploy")

    # then it drained at once, and the workers take messages again
    assert draining_while_on
    assert "Drained: no run is executing." in drained
    assert ended.strip() == "Drain ended: the workers take messages again."
    assert fleet_draining() is None
    # and both are audited with who and why
    entries = list(ControlAction.objects.order_by("id").values_list("action", "actor", "reason"))
    assert entries == [
        (ControlAction.Action.DRAIN_STARTED, "cli:deploy", "release 42"),
        (ControlAction.Action.DRAIN_ENDED, "cli:deploy", ""),
    ]


@pytest.mark.django_db
def test_status_tells_whether_the_fleet_drains_and_changes_nothing():
    # given no drain
    # when the status is asked, then a drain starts and the status is asked again
    before = _drain("--status")
    fleet_drain_start(by="deploy")
    during = _drain("--status")

    # then each says what is so, and asking wrote nothing
    assert before.strip().splitlines() == [
        "Not draining: the workers take messages.",
        "0 run(s) executing.",
    ]
    assert during.startswith("Draining since ")
    assert "no worker takes a new message until `manage.py drain --end`" in during
    assert ControlAction.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--timeout", "-1"], "--timeout must be from 0 to 3600 seconds", id="neg"),
        pytest.param(["--timeout", "3601"], "--timeout must be from 0 to 3600 seconds", id="big"),
        pytest.param(["--timeout", "soon"], "invalid float value: 'soon'", id="word"),
        pytest.param(["--end", "--status"], "not allowed with argument", id="end-and-status"),
        pytest.param(["--by", ""], "--by must be a name of 1 to 100 characters", id="by"),
        pytest.param(["--reason", "x" * 501], "--reason must be at most 500", id="reason"),
    ],
)
def test_bad_drain_input_is_a_command_error_and_changes_nothing(args, message):
    with pytest.raises(CommandError) as error:
        _drain(*args)
    assert message in str(error.value)
    assert not FleetState.objects.filter(draining=True).exists()
    assert not ControlAction.objects.exists()


@pytest.mark.worker
def test_a_drained_worker_takes_no_new_message_until_the_drain_ends(worker_process):
    # given a real worker
    # when the fleet is drained from a terminal
    drained = manage_py("drain", "--timeout", "20", "--by", "deploy")

    # then the command exits 0 once nothing is executing
    assert drained.returncode == 0, drained.stderr
    assert "Drained: no run is executing." in drained.stdout
    # (a worker reads the controls at most once a second)
    time.sleep(1.5)

    # when a run is requested, it stays queued while the fleet drains
    run = job_run_request(job="expire_matches", trigger=Trigger.CLI)
    time.sleep(3)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert not run.attempts.exists()

    # when the drain ends, the worker runs it
    ended = manage_py("drain", "--end", "--by", "deploy")
    assert ended.returncode == 0, ended.stderr
    wait_for(_finished(run), timeout=30, message="the run after the drain")
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, worker_process.log_text()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_drain_times_out_naming_the_run_still_executing(broker, tmp_path):
    # given a release sweep of a few thousand due escrows, in batches of 5, on a real worker
    due = len(seeded_due_escrow_ids(4_000, seed=16))
    worker = WorkerProcess(log_path=tmp_path / "worker.log", env={"STEWARD_BATCH_SIZE": "5"})
    worker.start()
    try:
        run = job_run_request(job="release_escrows", trigger=Trigger.CLI)
        wait_for(lambda: runs_executing(), timeout=30, message="the sweep to start")

        # when the fleet is drained with half a second to wait
        started = time.monotonic()
        result = manage_py("drain", "--timeout", "0.5", "--by", "deploy")
        waited = time.monotonic() - started

        # then it exits 1 naming the run, and the drain stays on
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"#{run.pk} release_escrows on " in result.stderr
        assert "1 run(s) still executing after 0.5 s" in result.stderr
        assert "Traceback" not in result.stderr
        assert waited < 15
        assert "1 run(s) executing: " in manage_py("drain", "--status").stdout
        assert fleet_draining() is not None

        # and the run it holds goes on to the end: a drain takes no new message, it stops none
        wait_for(_finished(run), timeout=120, message="the sweep")
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED, worker.log_text()
        assert run.summary["escrows_released"] == due
    finally:
        worker.stop()
    assert manage_py("drain", "--end", "--by", "deploy").returncode == 0
    assert fleet_draining() is None
