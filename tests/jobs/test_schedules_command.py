"""`manage.py schedules`: every subcommand through the schedule services, audited with the CLI
user and reason, and bad input refused in one line with nothing saved."""

import getpass
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework import serializers

from jobs.models import JobRun, Schedule, ScheduleChange
from jobs.params import IdListField
from jobs.schedules import schedule_create, schedule_fields
from tests.workers import manage_py

CLI_USER = f"cli:{getpass.getuser()}"


class RegionParams(serializers.Serializer):
    user_ids = IdListField(required=False, help_text="Only these users.")
    region = serializers.ChoiceField(choices=["eu", "asia"], default="eu")


def _schedules(*args: str) -> str:
    out = StringIO()
    call_command("schedules", *args, stdout=out)
    return out.getvalue()


def _saved() -> tuple[list[dict], int]:
    """Every schedule's fields and the number of audit rows: what a refusal must not change."""
    return [schedule_fields(schedule) for schedule in Schedule.objects.order_by("pk")], (
        ScheduleChange.objects.count()
    )


@pytest.fixture
def regional_job(register_test_job):
    """A job whose runs take a region and user ids, and that catches up by default."""
    return register_test_job(lambda context: {"reminded": 0}, params=RegionParams, catch_up=True)


@pytest.fixture
def tokyo(regional_job):
    return schedule_create(
        by="operator",
        name="reminders-asia",
        job=regional_job.name,
        cron="0 9 * * *",
        timezone="Asia/Tokyo",
        params={"region": "asia"},
    )


@pytest.mark.django_db
def test_add_creates_the_schedule_audited_with_the_cli_user_and_reason(regional_job):
    # given a job that accepts parameters and catches up by default
    # when a schedule is added from the CLI with its fields, parameters and a reason
    output = _schedules(
        "add",
        "reminders-asia",
        "--job",
        regional_job.name,
        "--cron",
        "0 9 * * 1-5",
        "--timezone",
        "Asia/Tokyo",
        "--param",
        "region=asia",
        "--param",
        "user_ids=12,3,12",
        "--max-retries",
        "5",
        "--min-backoff-ms",
        "60000",
        "--notes",
        "the Asian region's morning",
        "--reason",
        "region launch",
    )

    # then the schedule holds the validated fields, with the job's catch-up policy
    schedule = Schedule.objects.get(name="reminders-asia")
    assert schedule_fields(schedule) == {
        "name": "reminders-asia",
        "job": regional_job.name,
        "cron": "0 9 * * 1-5",
        "timezone": "Asia/Tokyo",
        "params": {"region": "asia", "user_ids": [3, 12]},
        "enabled": True,
        "catch_up": True,
        "max_retries": 5,
        "min_backoff_ms": 60000,
        "notes": "the Asian region's morning",
    }
    assert schedule.created_by == schedule.updated_by == CLI_USER
    # and one audit row names the CLI user, the reason and the fields created
    change = ScheduleChange.objects.get(schedule=schedule)
    assert change.action == ScheduleChange.Action.CREATED
    assert change.changed_by == CLI_USER
    assert change.reason == "region launch"
    assert change.before is None
    assert change.after == schedule_fields(schedule)
    # and the output names it, its parameters and its next run at 09:00 Tokyo (00:00 UTC)
    assert "Created schedule reminders-asia." in output
    assert 'params: region="asia" user_ids=[3, 12]' in output
    assert "09:00 JST (" in output
    assert "00:00 UTC)" in output


@pytest.mark.django_db
def test_add_paused_without_catch_up_and_named_by_the_operator(regional_job):
    # given a job that catches up by default
    # when a schedule is added paused, without catch-up, by a named operator
    _schedules(
        "add",
        "quiet",
        "--job",
        regional_job.name,
        "--cron",
        "@hourly",
        "--paused",
        "--no-catch-up",
        "--by",
        "alice",
    )

    # then it is saved paused, with catch-up off, in UTC, and the audit names alice on the CLI
    schedule = Schedule.objects.get(name="quiet")
    assert (schedule.cron, schedule.timezone) == ("0 * * * *", "UTC")
    assert schedule.enabled is False
    assert schedule.catch_up is False
    assert schedule.params == {"region": "eu"}
    assert ScheduleChange.objects.get(schedule=schedule).changed_by == "cli:alice"


@pytest.mark.django_db
def test_set_changes_only_the_fields_named_and_audits_them(tokyo):
    # given a schedule at 09:00 Tokyo for the Asian region
    before = schedule_fields(tokyo)

    # when its cron and parameters are changed from the CLI, by id
    output = _schedules(
        "set",
        str(tokyo.pk),
        "--cron",
        "30 8 * * *",
        "--param",
        "region=asia",
        "--param",
        "user_ids=5",
        "--reason",
        "earlier",
    )

    # then just those fields changed
    tokyo.refresh_from_db()
    assert schedule_fields(tokyo) == {
        **before,
        "cron": "30 8 * * *",
        "params": {"region": "asia", "user_ids": [5]},
    }
    assert tokyo.updated_by == CLI_USER
    # and the audit keeps only the changed fields, before and after, with the reason
    change = ScheduleChange.objects.filter(schedule=tokyo).latest("id")
    assert change.action == ScheduleChange.Action.UPDATED
    assert (change.changed_by, change.reason) == (CLI_USER, "earlier")
    assert change.before == {"cron": "0 9 * * *", "params": {"region": "asia"}}
    assert change.after == {"cron": "30 8 * * *", "params": {"region": "asia", "user_ids": [5]}}
    assert "   cron: '0 9 * * *' -> '30 8 * * *'" in output
    assert "08:30 JST (" in output


@pytest.mark.django_db
def test_set_renames_clears_params_and_resets_retries(tokyo):
    # given a schedule with parameters and its own retries
    _schedules("set", tokyo.name, "--max-retries", "7")

    # when it is renamed, its parameters cleared and its retries given back to the job
    _schedules(
        "set", tokyo.name, "--name", "reminders-tokyo", "--clear-params", "--max-retries", "default"
    )

    # then the renamed schedule has the job's default parameters and retries
    tokyo.refresh_from_db()
    assert tokyo.name == "reminders-tokyo"
    assert tokyo.params == {"region": "eu"}
    assert tokyo.max_retries is None
    change = ScheduleChange.objects.filter(schedule=tokyo).latest("id")
    assert change.before == {
        "max_retries": 7,
        "name": "reminders-asia",
        "params": {"region": "asia"},
    }


@pytest.mark.django_db
def test_set_with_the_same_values_writes_no_audit(tokyo):
    # given a schedule and its audit
    changes = ScheduleChange.objects.count()

    # when it is set to the cron it has
    output = _schedules("set", tokyo.name, "--cron", "0 9 * * *")

    # then nothing is written and the output says so
    assert ScheduleChange.objects.count() == changes
    assert "Schedule reminders-asia unchanged" in output


@pytest.mark.django_db
def test_pause_and_resume_are_audited_once_each(tokyo):
    # given a running schedule
    # when it is paused twice, then resumed, from the CLI
    paused = _schedules("pause", tokyo.name, "--reason", "holiday")
    again = _schedules("pause", tokyo.name)
    resumed = _schedules("resume", tokyo.name, "--reason", "back", "--by", "bob")

    # then one paused and one resumed row are audited, with who and why
    changes = list(
        ScheduleChange.objects.filter(schedule=tokyo)
        .exclude(action=ScheduleChange.Action.CREATED)
        .order_by("id")
        .values_list("action", "changed_by", "reason", "before", "after")
    )
    assert changes == [
        ("paused", CLI_USER, "holiday", {"enabled": True}, {"enabled": False}),
        ("resumed", "cli:bob", "back", {"enabled": False}, {"enabled": True}),
    ]
    tokyo.refresh_from_db()
    assert tokyo.enabled is True
    assert "Paused schedule reminders-asia" in paused
    assert "Schedule reminders-asia is paused already." in again
    assert "Resumed schedule reminders-asia." in resumed


@pytest.mark.django_db
def test_remove_deletes_the_schedule_and_keeps_its_audit(tokyo):
    # given a schedule
    fields = schedule_fields(tokyo)

    # when it is removed from the CLI
    output = _schedules("remove", tokyo.name, "--reason", "region closed")

    # then it is gone, and its audit stays, naming it, with the removal and its fields
    assert not Schedule.objects.filter(name=tokyo.name).exists()
    changes = ScheduleChange.objects.filter(schedule_name=tokyo.name).order_by("id")
    assert [change.action for change in changes] == ["created", "removed"]
    removal = changes.last()
    assert removal.schedule is None
    assert (removal.changed_by, removal.reason) == (CLI_USER, "region closed")
    assert removal.before == fields
    assert "Removed schedule reminders-asia" in output


@pytest.mark.django_db
def test_list_shows_each_schedule_in_its_zone_and_in_utc(tokyo):
    # given the default schedules and a paused Tokyo schedule with parameters
    _schedules("pause", tokyo.name)

    # when the job's schedules are listed
    output = _schedules("list", "--job", tokyo.job)

    # then the table has one row with the cron in words, the zone, the parameters, the state,
    # the catch-up policy and the next run at 09:00 Tokyo, which is 00:00 UTC
    header, rule, row = output.splitlines()
    assert header.split("  ")[0] == "name"
    assert "next run (its zone)" in header
    assert "next run (UTC)" in header
    cells = [cell.strip() for cell in row.split("  ") if cell.strip()]
    assert cells[:7] == [
        "reminders-asia",
        tokyo.job,
        "0 9 * * * (every day at 09:00)",
        "Asia/Tokyo",
        'region="asia"',
        "schedule paused",
        "yes",
    ]
    assert cells[7].endswith(" 09:00 JST")
    assert cells[8].endswith(" 00:00 UTC")


@pytest.mark.django_db
def test_list_without_a_job_shows_every_schedule():
    # given the default schedules made on migrate
    names = set(Schedule.objects.values_list("name", flat=True))

    # when every schedule is listed
    rows = _schedules("list").splitlines()[2:]

    # then each one has its row
    assert {row.split()[0] for row in rows} == names


BAD_INPUT = [
    pytest.param(
        ["add", "x", "--job", "no_such_job", "--cron", "0 * * * *"],
        "job: unknown job 'no_such_job'",
        id="unknown-job",
    ),
    pytest.param(
        ["add", "x", "--job", "cleanup", "--cron", "61 * * * *"],
        "cron: minute 61 in '61' is outside 0-59",
        id="bad-cron",
    ),
    pytest.param(
        ["add", "x", "--job", "cleanup", "--cron", "0 * * * *", "--timezone", "Mars/Olympus"],
        "timezone: unknown time zone 'Mars/Olympus'",
        id="unknown-time-zone",
    ),
    pytest.param(
        ["add", "x", "--job", "cleanup", "--cron", "61 * * * *", "--timezone", "Mars/Olympus"],
        "cron: minute 61 in '61' is outside 0-59; timezone: unknown time zone 'Mars/Olympus'",
        id="each-field-named",
    ),
    pytest.param(
        ["add", "x", "--job", "cleanup", "--cron", "0 * * * *", "--param", "colour=red"],
        "params.colour: cleanup has no parameter 'colour'",
        id="unknown-param",
    ),
    pytest.param(
        ["add", "x", "--job", "cleanup", "--cron", "0 * * * *", "--param", "colour"],
        "params: 'colour' is not key=value",
        id="param-not-key-value",
    ),
    pytest.param(
        ["add", "cleanup", "--job", "cleanup", "--cron", "0 * * * *"],
        "name: a schedule named 'cleanup' exists already",
        id="duplicate-name",
    ),
    pytest.param(
        ["add", "two words", "--job", "cleanup", "--cron", "0 * * * *"],
        "name: a name of at most 100 letters",
        id="bad-name",
    ),
    pytest.param(
        ["add", "x", "--job", "cleanup", "--cron", "0 * * * *", "--max-retries", "99"],
        "max_retries: a whole number from 0 to 20",
        id="retries-out-of-range",
    ),
    pytest.param(
        ["add", "x", "--job", "cleanup", "--cron", "0 * * * *", "--max-retries", "many"],
        "'many' is not a whole number or 'default'",
        id="retries-word",
    ),
    pytest.param(
        ["add", "x", "--job", "cleanup", "--cron", "0 * * * *", "--reason", "r" * 501],
        "--reason must be at most 500 characters",
        id="reason-too-long",
    ),
    pytest.param(
        ["set", "cleanup", "--cron", "0 3 * * * *"],
        "cron: '0 3 * * * *' has 6 fields; a cron spec has 5",
        id="set-bad-cron",
    ),
    pytest.param(
        ["set", "cleanup", "--name", "release_escrows"],
        "name: a schedule named 'release_escrows' exists already",
        id="set-duplicate-name",
    ),
    pytest.param(
        ["set", "cleanup", "--param", "colour=red"],
        "params.colour: cleanup has no parameter 'colour'",
        id="set-unknown-param",
    ),
    pytest.param(["set", "cleanup"], "nothing to change", id="set-nothing"),
    pytest.param(["set", "no-such", "--cron", "0 * * * *"], "no schedule 'no-such'", id="set-404"),
    pytest.param(["pause", "no-such"], "no schedule 'no-such'", id="pause-404"),
    pytest.param(["resume", "999999"], "no schedule '999999'", id="resume-404"),
    pytest.param(["remove", "no-such"], "no schedule 'no-such'", id="remove-404"),
    pytest.param(["list", "--job", "no_such_job"], "unknown job 'no_such_job'", id="list-job"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_is_one_command_error_and_saves_nothing(args, message):
    # given the default schedules and their audit
    saved = _saved()

    # when the command is given bad input
    with pytest.raises(CommandError) as error:
        _schedules(*args)

    # then the error names what is wrong in one line, and nothing was saved or audited
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert _saved() == saved


@pytest.mark.django_db
def test_a_bad_param_value_names_the_field_and_saves_nothing(regional_job):
    # given a job whose runs take a region among two
    saved = _saved()

    # when a schedule is added with a region it does not know
    with pytest.raises(CommandError) as error:
        _schedules(
            "add", "x", "--job", regional_job.name, "--cron", "@daily", "--param", "region=mars"
        )

    # then the field and its fault are named, and nothing was saved
    assert str(error.value) == 'params.region: "mars" is not a valid choice.'
    assert _saved() == saved


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        *(
            case
            for case in BAD_INPUT
            if case.id
            in {"each-field-named", "unknown-job", "duplicate-name", "retries-word", "set-404"}
        ),
        pytest.param(
            ["add", "x", "--job", "cleanup", "--cron", "@daily", "--bogus"],
            "unrecognized arguments: --bogus",
            id="bogus",
        ),
        pytest.param(["frob"], "invalid choice: 'frob'", id="unknown-action"),
    ],
)
def test_bad_input_from_the_command_line_exits_non_zero_in_one_line(args, message):
    # given the default schedules and their audit
    saved = _saved()

    # when the command runs as a process with bad input
    result = manage_py("schedules", *args)

    # then it exits non-zero with the message in one line of stderr, and nothing was saved
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert result.stdout == ""
    assert _saved() == saved
    assert not JobRun.objects.exists()
