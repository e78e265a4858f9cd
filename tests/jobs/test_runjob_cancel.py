"""`manage.py runjob --cancel`: a queued run ends cancelled, a running one is asked to stop at
its next batch boundary, and a finished or unknown run is refused without a change."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from jobs.models import ControlAction, JobRun, RunStatus, Trigger
from jobs.services import job_run_request
from tests.workers import manage_py


def _queued_run() -> JobRun:
    return job_run_request(job="expire_matches", trigger=Trigger.CLI, enqueue=False)


def _run_in(status: str) -> JobRun:
    run = _queued_run()
    JobRun.objects.filter(pk=run.pk).update(status=status, started_at=timezone.now())
    run.refresh_from_db()
    return run


def _runjob(*args: str) -> str:
    out = StringIO()
    call_command("runjob", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_cancelling_a_queued_run_cancels_it_at_once_and_audits_who_and_why():
    # given a queued run
    run = _queued_run()

    # when it is cancelled from the CLI, with who and why
    output = _runjob("--cancel", str(run.pk), "--by", "ops", "--reason", "wrong as-of")

    # then it is cancelled now, with who and why on the run and in the audit
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.cancel_requested_by == "cli:ops"
    assert run.cancel_reason == "wrong as-of"
    assert output.strip() == f"expire_matches run #{run.pk}: cancelled"
    entry = ControlAction.objects.get()
    assert entry.action == ControlAction.Action.RUN_CANCELLED
    assert entry.target == f"#{run.pk} expire_matches"
    assert (entry.actor, entry.reason) == ("cli:ops", "wrong as-of")
    assert entry.before == {"status": "queued"}
    assert entry.after["status"] == "cancelled"


@pytest.mark.django_db
def test_cancelling_a_running_run_asks_it_to_stop_at_its_next_batch_boundary():
    # given a run a worker is executing
    run = _run_in(RunStatus.RUNNING)

    # when it is cancelled from the CLI
    output = _runjob("--cancel", str(run.pk), "--by", "ops")

    # then it keeps running, asked to stop, and the output says so
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert run.cancel_requested_at is not None
    assert run.cancel_requested_by == "cli:ops"
    assert output.strip() == (
        f"expire_matches run #{run.pk}: running, stopping at its next batch boundary"
    )
    entry = ControlAction.objects.get()
    assert entry.after == {"status": "running", "stopping": True}


@pytest.mark.django_db
def test_cancel_prints_the_run_as_json_when_asked():
    # given a queued run
    run = _queued_run()

    # when it is cancelled with --json
    printed = json.loads(_runjob("--cancel", str(run.pk), "--by", "ops", "--json"))

    # then the run is printed with its new state and who cancelled it
    assert printed["id"] == run.pk
    assert printed["status"] == "cancelled"
    assert printed["cancel_requested_by"] == "cli:ops"
    assert printed["urgent"] is False


@pytest.mark.django_db
@pytest.mark.parametrize(
    "status", [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.PARTIAL, RunStatus.CANCELLED]
)
def test_a_finished_run_is_refused_and_left_as_it_was(status):
    # given a finished run
    run = _run_in(status)

    # when it is cancelled from the CLI
    with pytest.raises(CommandError) as error:
        _runjob("--cancel", str(run.pk), "--by", "ops")

    # then the error names the run and its state, and nothing changed
    assert str(error.value) == (
        f"run #{run.pk} is already {status}; only a queued, running or waiting run can be cancelled"
    )
    run.refresh_from_db()
    assert run.status == status
    assert run.cancel_requested_at is None
    assert not ControlAction.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--cancel", "999999"], "no run #999999", id="unknown-run"),
        pytest.param(
            ["expire_matches", "--cancel", "{run}"],
            "--cancel cancels a run: give no job name with it",
            id="with-job",
        ),
        pytest.param(
            ["--cancel", "{run}", "--enqueue"],
            "--cancel cancels a run: give no --enqueue with it",
            id="with-enqueue",
        ),
        pytest.param(
            ["--cancel", "{run}", "--dry-run"],
            "--cancel cancels a run: give no --dry-run with it",
            id="with-dry-run",
        ),
        pytest.param(
            ["--cancel", "{run}", "--by", " "], "--by must be a name of 1 to 100", id="blank-by"
        ),
        pytest.param(
            ["--cancel", "{run}", "--reason", "x" * 501],
            "--reason must be at most 500 characters",
            id="long-reason",
        ),
        pytest.param(
            ["--cancel", "abc"], "argument --cancel: invalid int value: 'abc'", id="not-an-id"
        ),
    ],
)
def test_bad_cancel_input_is_a_command_error_and_changes_nothing(args, message):
    # given a queued run
    run = _queued_run()

    # when runjob --cancel is given bad input
    with pytest.raises(CommandError) as error:
        _runjob(*[arg.format(run=run.pk) for arg in args])

    # then the error says what is wrong, and the run is still queued and not asked to stop
    assert message in str(error.value)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert run.cancel_requested_at is None
    assert not ControlAction.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_cancel_from_the_command_line_exits_0_then_1_for_the_same_run():
    # given a queued run
    run = _queued_run()

    # when it is cancelled from a terminal, twice
    first = manage_py("runjob", "--cancel", str(run.pk), "--by", "ops", "--reason", "deploy")
    second = manage_py("runjob", "--cancel", str(run.pk), "--by", "ops")

    # then the first exits 0 reporting the run cancelled, the second exits 1 in one line
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"expire_matches run #{run.pk}: cancelled"
    assert second.returncode == 1
    assert "Traceback" not in second.stderr
    assert second.stderr.strip() == (
        f"CommandError: run #{run.pk} is already cancelled; only a queued, running or waiting "
        "run can be cancelled"
    )
    assert second.stdout == ""
    # and the one cancel is audited once
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert ControlAction.objects.get().reason == "deploy"
