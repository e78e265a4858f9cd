"""`manage.py runjob`: listing, running every job, and refusing bad input without writing."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework import serializers

from jobs.models import JobRun, RunStatus, Trigger
from jobs.params import IdListField
from jobs.queues import queue_stats
from jobs.registry import all_jobs
from jobs.schedules import schedule_create
from ledger.statuses import CycleStatus, EscrowStatus, MatchStatus
from tests.factories import HOLD, donation_at, match_at, obligated_cycle
from tests.workers import manage_py

AS_OF = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
LEDGER_JOBS = {
    "release_escrows": "0 * * * *",
    "expire_matches": "0 */6 * * *",
    "cycle_reminders": "0 9 * * *",
}
BAD_INPUT = [
    pytest.param(["no_such_job"], "unknown job 'no_such_job'", id="unknown-job"),
    pytest.param(
        ["release_escrows", "--as-of", "yesterday"],
        "'yesterday' is not an ISO-8601",
        id="as-of-word",
    ),
    pytest.param(
        ["release_escrows", "--as-of", "2026-13-01"],
        "'2026-13-01' is not an ISO-8601",
        id="as-of-month-13",
    ),
    pytest.param(
        ["release_escrows", "--wait"], "--wait only applies with --enqueue", id="wait-no-enqueue"
    ),
    pytest.param([], "name a job to run, or use --list or --all", id="no-job"),
    pytest.param(
        ["release_escrows", "--all"], "give a job name or --all, not both", id="job-and-all"
    ),
    pytest.param(
        ["release_escrows", "--enqueue", "--timeout", "0"],
        "--timeout must be a positive number",
        id="timeout-zero",
    ),
    pytest.param(
        ["release_escrows", "--as-of", "9999-12-31T00:00:00Z"],
        "is more than 3653 days from now",
        id="as-of-far-future",
    ),
    pytest.param(
        ["release_escrows", "--param", "bogus=1"],
        "params.bogus: release_escrows has no parameter 'bogus'",
        id="unknown-param",
    ),
    pytest.param(
        ["release_escrows", "--param", "escrow_ids"],
        "params: 'escrow_ids' is not key=value",
        id="param-not-key-value",
    ),
    pytest.param(
        ["--all", "--param", "game=snake"], "--param applies to one job, not --all", id="all-param"
    ),
    pytest.param(
        ["release_escrows", "--by", "ops"], "--by only applies with --cancel", id="by-no-cancel"
    ),
    pytest.param(
        ["release_escrows", "--urgent", "--sync"],
        "--urgent sends the run to the workers: not with --sync",
        id="urgent-sync",
    ),
]


class TargetParams(serializers.Serializer):
    ids = IdListField(required=False, help_text="Only these rows.")
    region = serializers.ChoiceField(choices=["eu", "asia"], default="eu", help_text="Whose.")


def targeted_body(context):
    return {
        "targets": len(context.params.get("ids", [])),
        "in_asia": context.params["region"] == "asia",
    }


def _runjob(*args: str) -> str:
    out = StringIO()
    call_command("runjob", *args, stdout=out)
    return out.getvalue()


def _listed(output: str) -> dict[str, list[str]]:
    """The --list output as each job's indented lines, by job name."""
    jobs: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in output.splitlines():
        if line.startswith("   "):
            lines.append(line.strip())
        else:
            lines = jobs[line.split()[0]] = []
    return jobs


@pytest.mark.django_db
def test_list_shows_each_job_with_its_schedules_crons():
    # given the registered jobs and their default schedules, one of them given a second,
    # paused schedule in Tokyo time
    schedule_create(
        by="test",
        name="tokyo_reminders",
        job="cycle_reminders",
        cron="0 9 * * *",
        timezone="Asia/Tokyo",
        enabled=False,
    )

    # when the jobs are listed
    output = _runjob("--list")

    # then every job is listed, each ledger job with its schedules' crons and time zones
    listed = _listed(output)
    assert set(listed) == {spec.name for spec in all_jobs()}
    assert "queue: money (urgent lane money-urgent)" in listed["release_escrows"]
    for name, cron in LEDGER_JOBS.items():
        assert f"schedule {name}: {cron} in UTC" in listed[name], output
    assert (
        "schedule tokyo_reminders: 0 9 * * * in Asia/Tokyo (schedule paused)"
        in listed["cycle_reminders"]
    )
    # and nothing ran
    assert not JobRun.objects.exists()


@pytest.mark.django_db
def test_list_describes_a_jobs_parameters_and_a_job_without_schedules(register_test_job):
    # given a job with parameters, registered after migrate made the default schedules
    spec = register_test_job(targeted_body, params=TargetParams)

    # when the jobs are listed
    listed = _listed(_runjob("--list"))

    # then its queue and lanes are named, and its parameters described with their types,
    # defaults and help
    assert listed[spec.name] == [
        "queue: default (urgent lane default-urgent)",
        "param ids (list of integer; optional): Only these rows.",
        "param region (choice; optional; one of eu, asia; default 'eu'): Whose.",
        "schedules: none (it runs when asked)",
    ]


@pytest.mark.django_db
def test_all_runs_every_job_through_the_runner():
    # given one overdue cycle, one due escrow and one stale match
    cycle = obligated_cycle(due_at=AS_OF - timedelta(days=1))
    escrow = donation_at(at=AS_OF - HOLD - timedelta(minutes=1)).escrow
    match = match_at(at=AS_OF - timedelta(days=2))
    assert not JobRun.objects.exists()

    # when every job is run from the CLI as of one time
    output = _runjob("--all", "--as-of", AS_OF.isoformat())

    # then one CLI run per registered job is recorded, each succeeded (beside them, the
    # follow-ups their runs requested, queued for the workers)
    runs = {run.job: run for run in JobRun.objects.filter(trigger=Trigger.CLI)}
    assert (
        JobRun.objects.exclude(trigger=Trigger.CLI).filter(follow_up_of__isnull=True).count() == 0
    )
    assert set(runs) == {spec.name for spec in all_jobs()}
    assert set(LEDGER_JOBS) <= set(runs)
    for run in runs.values():
        assert run.status == RunStatus.SUCCEEDED, (run.job, run.error)
        assert run.trigger == Trigger.CLI
        assert run.as_of == AS_OF
        assert f"{run.job} run #{run.pk}: succeeded" in output
    # and each ledger job did its work
    assert runs["release_escrows"].summary["escrows_released"] == 1
    assert runs["expire_matches"].summary["matches_expired"] == 1
    assert runs["cycle_reminders"].summary["cycles_defaulted"] == 1
    escrow.refresh_from_db()
    match.refresh_from_db()
    cycle.refresh_from_db()
    assert escrow.status == EscrowStatus.RELEASED
    assert match.status == MatchStatus.EXPIRED
    assert cycle.status == CycleStatus.DEFAULTED


@pytest.mark.django_db
def test_dry_run_from_the_cli_is_recorded_and_changes_nothing():
    # given a due escrow
    escrow = donation_at(at=AS_OF - HOLD - timedelta(minutes=1)).escrow

    # when the job is dry-run from the CLI
    output = _runjob("release_escrows", "--dry-run", "--as-of", AS_OF.isoformat())

    # then the run is recorded as a dry run reporting the escrow, which is still holding
    run = JobRun.objects.get()
    assert run.dry_run is True
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary["escrows_released"] == 1
    assert "   Escrows released: 1" in output
    escrow.refresh_from_db()
    assert escrow.status == EscrowStatus.HOLDING


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_is_a_command_error_and_writes_nothing(args, message):
    # given a due escrow that any run would release
    escrow = donation_at(at=AS_OF - HOLD - timedelta(hours=1)).escrow

    # when runjob is called with bad input
    with pytest.raises(CommandError) as error:
        _runjob(*args)

    # then the error says what is wrong, and no run was recorded or made
    assert message in str(error.value)
    assert JobRun.objects.count() == 0
    escrow.refresh_from_db()
    assert escrow.status == EscrowStatus.HOLDING


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        *BAD_INPUT,
        pytest.param(
            ["release_escrows", "--bogus"], "unrecognized arguments: --bogus", id="unknown-flag"
        ),
    ],
)
def test_bad_input_from_the_command_line_exits_non_zero_without_a_traceback(args, message):
    # given a due escrow that any run would release
    escrow = donation_at(at=AS_OF - HOLD - timedelta(hours=1)).escrow

    # when runjob runs as a process with bad input
    result = manage_py("runjob", *args)

    # then it exits non-zero with the message in one line of stderr and no traceback
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0], result.stderr
    assert result.stdout == ""
    # and nothing was written
    assert JobRun.objects.count() == 0
    escrow.refresh_from_db()
    assert escrow.status == EscrowStatus.HOLDING


@pytest.mark.django_db
def test_a_failing_job_is_reported_in_one_line_and_recorded_with_its_traceback(
    register_test_job,
):
    # given a job whose body raises
    def body(context):
        raise RuntimeError("ledger out of balance")

    spec = register_test_job(body)
    out = StringIO()

    # when it is run from the CLI
    with pytest.raises(CommandError) as error:
        call_command("runjob", spec.name, stdout=out)

    # then the command fails naming the run, and the run keeps the error and traceback
    run = JobRun.objects.get(job=spec.name)
    assert str(error.value) == f"{spec.name} #{run.pk} failed"
    assert run.status == RunStatus.FAILED
    assert run.error == "RuntimeError: ledger out of balance"
    assert "Traceback" in run.traceback
    assert (
        "   Reason: failed after 1 attempt(s): RuntimeError: ledger out of balance"
        in out.getvalue()
    )


@pytest.mark.django_db
def test_params_are_validated_stored_and_given_to_the_body(register_test_job):
    # given a job that accepts target ids and a region
    spec = register_test_job(targeted_body, params=TargetParams)

    # when it is run from the CLI with repeated and unsorted ids
    output = _runjob(spec.name, "--param", "ids=9,4,9", "--param", "region=asia")

    # then the run stores the validated parameters and its body saw them
    run = JobRun.objects.get(job=spec.name)
    assert run.params == {"ids": [4, 9], "region": "asia"}
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary == {"targets": 2, "in_asia": True}
    assert '   Params: ids=[4, 9] region="asia"' in output


@pytest.mark.django_db
def test_enqueued_run_carries_its_params(register_test_job):
    # given a job that accepts target ids
    spec = register_test_job(targeted_body, params=TargetParams)

    # when it is queued from the CLI with one id
    output = _runjob(spec.name, "--enqueue", "--param", "ids=7")

    # then the queued run has the parameters, defaults filled in, and the output names them
    run = JobRun.objects.get(job=spec.name)
    assert run.status == RunStatus.QUEUED
    assert run.params == {"ids": [7], "region": "eu"}
    assert f'Queued {spec.name} run #{run.pk} with ids=[7] region="eu"' in output


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        pytest.param(
            ["ids=four"], "params.ids: item 0: A valid integer is required.", id="ids-word"
        ),
        pytest.param(["ids=0"], "params.ids: item 0: Ensure this value is greater than", id="id-0"),
        pytest.param(["region=mars"], 'params.region: "mars" is not a valid choice.', id="choice"),
        pytest.param(["colour=red"], "params.colour: test_job_", id="unknown"),
        pytest.param(
            ["ids="], "params.ids: Ensure this field has at least 1 elements.", id="empty"
        ),
    ],
)
@pytest.mark.parametrize("where", [[], ["--enqueue"]], ids=["sync", "enqueue"])
def test_an_ill_typed_param_names_the_field_and_records_nothing(
    register_test_job, pairs, message, where
):
    # given a job that accepts target ids and a region
    spec = register_test_job(targeted_body, params=TargetParams)
    args = [arg for pair in pairs for arg in ("--param", pair)]

    # when it is run with a parameter it refuses
    with pytest.raises(CommandError) as error:
        _runjob(spec.name, *where, *args)

    # then the error is one line naming the field, and no run was recorded
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert not JobRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("flags", "lane", "urgent"),
    [
        pytest.param(["--enqueue"], "default", False, id="enqueue"),
        pytest.param(["--urgent"], "default-urgent", True, id="urgent"),
        pytest.param(["--enqueue", "--urgent"], "default-urgent", True, id="enqueue-urgent"),
    ],
)
def test_an_enqueued_run_goes_to_its_lane(
    broker, django_capture_on_commit_callbacks, flags, lane, urgent
):
    # when a run of a default-queue job is sent to the workers from the CLI
    with django_capture_on_commit_callbacks(execute=True):
        output = _runjob("expire_matches", *flags)

    # then it is recorded queued, urgent or not, and its message waits in that lane alone
    run = JobRun.objects.get()
    assert run.status == RunStatus.QUEUED
    assert run.urgent is urgent
    assert f"Queued expire_matches run #{run.pk} on {lane} (message {run.message_id})" in output
    waiting = {stats.name: stats.waiting for stats in queue_stats()}
    assert waiting[lane] == 1
    assert sum(waiting.values()) == 1
