"""`manage.py queues`: listing the queues and the rate limits; pausing, limiting and clearing a
queue; handling its dead letters. Each change goes through the control services and is
audited; bad input is a CommandError naming what is wrong and changes nothing."""

import re
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from jobs.actors import actor_for
from jobs.controls import fleet_drain_start, queue_concurrency_set, queue_pause, rate_limit_set
from jobs.dead_letters import queue_dead_letters
from jobs.models import ControlAction, JobRun, QueueState, RateLimitSetting, RunStatus, Trigger
from jobs.queues import queue_stats
from jobs.services import job_run_request
from tests.workers import manage_py

QUEUE_COLUMNS = (
    "lane",
    "waiting",
    "delayed",
    "in flight",
    "dead",
    "paused",
    "concurrency",
    "rate limit",
)


def _queues(*args: str) -> str:
    out = StringIO()
    call_command("queues", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def _rows(output: str) -> dict[str, list[str]]:
    """A table's rows by their first cell (columns are two or more spaces apart); the lines
    of prose under it, one cell each, are left out."""
    lines = output.strip().splitlines()
    assert set(lines[1]) <= {"-", " "}, output
    rows = {}
    for line in lines[2:]:
        first, *cells = re.split(r"\s{2,}", line)
        if cells:
            rows[first] = cells
    return rows


def _runs(count: int) -> list[JobRun]:
    """Queued expire_matches runs, their messages not sent yet."""
    return [
        job_run_request(job="expire_matches", trigger=Trigger.CLI, enqueue=False)
        for _ in range(count)
    ]


def _queued_runs(count: int, *, urgent: bool = False) -> list[JobRun]:
    """Queued expire_matches runs, their messages waiting in the default queue (or lane)."""
    runs = _runs(count)
    for run in runs:
        actor_for("expire_matches", urgent=urgent).send(run.pk)
    return runs


def _dead_lettered(broker, count: int, *, error: str = "") -> tuple[list[JobRun], list[str]]:
    """Runs whose messages were dead-lettered, as Dramatiq does once their retries are spent
    (with the traceback of their last failure), and the message ids, oldest first."""
    runs = _runs(count)
    ids = [
        actor_for("expire_matches")
        .send_with_options(args=(run.pk,), traceback=f"Traceback (most recent call last):\n{error}")
        .message_id
        for run in runs
    ]
    consumer = broker.consume("default", prefetch=count, timeout=1000)
    try:
        for _ in runs:
            consumer.nack(next(consumer))
    finally:
        consumer.close()
    return runs, ids


def _waiting(queue: str) -> int:
    return next(stats.waiting for stats in queue_stats() if stats.name == queue)


def _dead_ids(queue: str = "default") -> list[str]:
    return [letter.message_id for letter in queue_dead_letters(queue=queue)[1]]


# --- list and rates ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_list_shows_every_lane_with_its_messages_and_controls(broker, settings):
    # given two runs waiting in the default queue, one in its urgent lane, and the money queue
    # paused, limited to 3 at once at run time and to 100 runs a minute; the notifications
    # queue limited to 4 by the environment
    settings.STEWARD_QUEUE_CONCURRENCY = {"notifications": 4}
    _queued_runs(2)
    _queued_runs(1, urgent=True)
    queue_pause(queue="money", by="ops")
    queue_concurrency_set(queue="money", concurrency=3, by="ops")
    rate_limit_set(name="money", limit=100, window_seconds=60, by="ops")

    # when the queues are listed
    output = _queues("list")

    # then every lane of every queue is a row with its counts and its queue's controls
    assert output.splitlines()[0].split("  ")[0] == "queue"
    rows = _rows(output)
    assert set(rows) == {
        "default",
        "default-urgent",
        "engine",
        "engine-urgent",
        "money",
        "money-urgent",
        "notifications",
        "notifications-urgent",
        "schedule",
    }
    assert dict(zip(QUEUE_COLUMNS, rows["default"], strict=True)) == {
        "lane": "normal",
        "waiting": "2",
        "delayed": "0",
        "in flight": "0",
        "dead": "0",
        "paused": "no",
        "concurrency": "no limit",
        "rate limit": "none",
    }
    assert rows["default-urgent"][:2] == ["urgent", "1"]
    for lane in ("money", "money-urgent"):
        assert rows[lane][5:] == ["yes", "3 (run time)", "100/60s"], rows[lane]
    assert rows["notifications"][6] == "4 (environment)"
    # and the fleet is not said to drain
    assert "draining" not in output


@pytest.mark.django_db
def test_list_says_when_the_fleet_drains(broker):
    # given a drain
    fleet_drain_start(by="deploy")

    # when the queues are listed
    output = _queues("list")

    # then the listing ends saying so
    assert output.strip().splitlines()[-1].startswith("The fleet is draining since ")
    assert "`manage.py drain --end`" in output


@pytest.mark.django_db
def test_rates_lists_every_limit_that_can_be_set_with_its_source(broker, settings):
    # given one limit from the environment and one set at run time
    settings.STEWARD_QUEUE_RATE_LIMITS = "channel-sms=600/60"
    rate_limit_set(name="money", limit=10, window_seconds=1, by="ops")

    # when the rate limits are listed
    rows = _rows(_queues("rates"))

    # then each queue's limit and each job's are listed with where they come from
    assert rows["channel-sms"] == ["600/60s", "environment"]
    assert rows["money"] == ["10/1s", "run time"]
    assert rows["default"] == ["none", "-"]


# --- pause and resume -------------------------------------------------------------------------


@pytest.mark.django_db
def test_pause_and_resume_change_the_queue_and_audit_each_change(broker):
    # when the money queue is paused, paused again, then resumed
    paused = _queues("pause", "money", "--by", "ops", "--reason", "bank outage")
    again = _queues("pause", "money", "--by", "ops")
    state_while_paused = QueueState.objects.get(queue="money").paused
    resumed = _queues("resume", "money", "--by", "ops", "--reason", "bank back")

    # then it was paused, the second pause changed nothing, and it runs again
    assert state_while_paused is True
    assert "Paused queue money (both lanes)" in paused
    assert again.strip() == "Queue money is paused already."
    assert "Resumed queue money" in resumed
    assert QueueState.objects.get(queue="money").paused is False
    # and the audit has one row for each change, newest first, with who and why
    entries = list(ControlAction.objects.values_list("action", "target", "actor", "reason"))
    assert entries == [
        (ControlAction.Action.QUEUE_RESUMED, "money", "cli:ops", "bank back"),
        (ControlAction.Action.QUEUE_PAUSED, "money", "cli:ops", "bank outage"),
    ]


# --- concurrency and rates --------------------------------------------------------------------


@pytest.mark.django_db
def test_concurrency_is_set_then_given_back_to_the_environment(broker, settings):
    # given the environment limiting the money queue to 4
    settings.STEWARD_QUEUE_CONCURRENCY = {"money": 4}

    # when it is set to 2, then back to the default
    set_output = _queues("concurrency", "money", "2", "--by", "ops", "--reason", "db load")
    state_while_set = QueueState.objects.get(queue="money").concurrency
    default_output = _queues("concurrency", "money", "default", "--by", "ops")

    # then it was 2 at run time, and is the environment's 4 again
    assert state_while_set == 2
    assert set_output.strip() == (
        "Queue money: concurrency 2 (run time) across the fleet (was 4 (environment))."
    )
    assert QueueState.objects.get(queue="money").concurrency is None
    assert default_output.strip() == (
        "Queue money: concurrency 4 (environment) across the fleet (was 2 (run time))."
    )
    # and both changes are audited with before and after
    entries = list(ControlAction.objects.order_by("id").values_list("before", "after", "reason"))
    assert entries == [
        ({"concurrency": 4}, {"concurrency": 2}, "db load"),
        ({"concurrency": 2}, {"concurrency": 4}, ""),
    ]


@pytest.mark.django_db
def test_a_rate_limit_is_set_then_given_back_to_the_environment(broker, settings):
    # given the environment limiting the money queue to 100 a minute
    settings.STEWARD_QUEUE_RATE_LIMITS = "money=100/60"

    # when it is set to 5 a second (written as `list` shows it), then back to the default
    set_output = _queues("rate", "money", "5/1s", "--by", "ops")
    setting = RateLimitSetting.objects.get(name="money")
    default_output = _queues("rate", "money", "default", "--by", "ops")

    # then it was 5 a second at run time, and is the environment's again
    assert (setting.limit, setting.window_seconds) == (5, 1)
    assert set_output.strip() == "Rate limit money: 5/1s across the fleet (was 100/60s)."
    assert not RateLimitSetting.objects.exists()
    assert default_output.strip() == "Rate limit money: 100/60s across the fleet (was 5/1s)."
    entries = list(ControlAction.objects.order_by("id").values_list("action", "before", "after"))
    assert entries == [
        (
            ControlAction.Action.RATE_LIMIT_CHANGED,
            {"rate_limit": "100/60s"},
            {"rate_limit": "5/1s"},
        ),
        (
            ControlAction.Action.RATE_LIMIT_CHANGED,
            {"rate_limit": "5/1s"},
            {"rate_limit": "100/60s"},
        ),
    ]


LIMIT_BAD_INPUT = [
    pytest.param(
        ["concurrency", "money", "0"], "concurrency: A whole number from 1 to 10,000.", id="c-0"
    ),
    pytest.param(
        ["concurrency", "money", "-1"], "concurrency: A whole number from 1 to 10,000.", id="c-neg"
    ),
    pytest.param(
        ["concurrency", "money", "10001"],
        "concurrency: A whole number from 1 to 10,000.",
        id="c-10001",
    ),
    pytest.param(
        ["concurrency", "money", "abc"],
        "argument N: 'abc' is not a whole number or 'default'",
        id="c-abc",
    ),
    pytest.param(
        ["concurrency", "nope", "3"], "unknown queue 'nope'; known queues: default,", id="c-queue"
    ),
    pytest.param(["concurrency", "money-urgent", "3"], "unknown queue 'money-urgent'", id="c-lane"),
    pytest.param(
        ["rate", "money", "5/0"], "window_seconds: A whole number from 1 to 86,400.", id="r-5/0"
    ),
    pytest.param(
        ["rate", "money", "0/60"], "limit: A whole number from 1 to 1,000,000.", id="r-0/60"
    ),
    pytest.param(
        ["rate", "money", "abc"],
        "argument LIMIT/SECONDS: 'abc' is not LIMIT/SECONDS (e.g. 100/60) or 'default'",
        id="r-abc",
    ),
    pytest.param(["rate", "money", "100"], "'100' is not LIMIT/SECONDS", id="r-no-window"),
    pytest.param(["rate", "nope", "5/1"], "unknown rate limit 'nope'; known: ", id="r-name"),
    pytest.param(["pause", "nope"], "unknown queue 'nope'", id="pause-queue"),
    pytest.param(["resume", "nope"], "unknown queue 'nope'", id="resume-queue"),
    pytest.param(
        ["pause", "money", "--reason", "x" * 501],
        "--reason must be at most 500 characters",
        id="pause-reason",
    ),
    pytest.param(["pause", "money", "--by", ""], "--by must be a name of 1 to 100", id="by"),
    pytest.param(["bogus"], "invalid choice: 'bogus'", id="action"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "message"), LIMIT_BAD_INPUT)
def test_bad_control_input_is_a_command_error_and_changes_nothing(broker, args, message):
    # when a control is given bad input
    with pytest.raises(CommandError) as error:
        _queues(*args)

    # then the error names what is wrong, and no control or audit row was written
    assert message in str(error.value)
    assert not QueueState.objects.exists()
    assert not RateLimitSetting.objects.exists()
    assert not ControlAction.objects.exists()


# --- clear ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("confirm", "message"),
    [
        pytest.param([], "confirm with --confirm default", id="none"),
        pytest.param(["--confirm", "money"], "confirm with --confirm default", id="other-queue"),
    ],
)
def test_clear_without_the_matching_confirmation_changes_nothing(broker, confirm, message):
    # given two runs waiting in the default queue
    runs = _queued_runs(2)

    # when it is cleared without its name repeated
    with pytest.raises(CommandError) as error:
        _queues("clear", "default", *confirm, "--by", "ops")

    # then nothing was dropped or cancelled
    assert message in str(error.value)
    assert _waiting("default") == 2
    assert set(JobRun.objects.values_list("status", flat=True)) == {RunStatus.QUEUED}
    assert not ControlAction.objects.exists()
    assert len(runs) == 2


@pytest.mark.django_db
def test_clear_drops_the_waiting_messages_and_cancels_their_runs(broker):
    # given two runs waiting in the default queue and one in its urgent lane
    runs = _queued_runs(2)
    urgent = _queued_runs(1, urgent=True)[0]

    # when the urgent lane alone is cleared, confirmed
    output = _queues(
        "clear",
        "default-urgent",
        "--confirm",
        "default-urgent",
        "--by",
        "ops",
        "--reason",
        "bad deploy",
    )

    # then its message is gone and its run cancelled; the normal lane is untouched
    assert output.strip() == "Cleared queue default-urgent: 1 message dropped, 1 run cancelled."
    assert _waiting("default-urgent") == 0
    assert _waiting("default") == 2
    urgent.refresh_from_db()
    assert urgent.status == RunStatus.CANCELLED
    assert urgent.cancel_requested_by == "cli:ops"

    # when the queue itself is cleared, its remaining lane goes too
    output = _queues("clear", "default", "--confirm", "default", "--by", "ops")
    assert output.strip() == "Cleared queue default: 2 messages dropped, 2 runs cancelled."
    for run in runs:
        run.refresh_from_db()
        assert run.status == RunStatus.CANCELLED
    entries = list(ControlAction.objects.order_by("id"))
    assert [(entry.action, entry.target) for entry in entries] == [
        (ControlAction.Action.QUEUE_CLEARED, "default-urgent"),
        (ControlAction.Action.QUEUE_CLEARED, "default"),
    ]
    assert entries[0].reason == "bad deploy"
    assert entries[1].after == {"messages": 2, "runs_cancelled": 2}


@pytest.mark.django_db
def test_clear_of_an_unknown_queue_is_refused(broker):
    with pytest.raises(CommandError) as error:
        _queues("clear", "nope", "--confirm", "nope", "--by", "ops")
    assert "unknown queue 'nope'" in str(error.value)
    assert not ControlAction.objects.exists()


# --- dead letters -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_dead_lists_the_letters_with_their_runs_and_errors(broker):
    # given two dead-lettered run messages that failed with an error
    runs, ids = _dead_lettered(broker, 2, error="RuntimeError: ledger locked")

    # when the dead letters are listed, all and then one
    output = _queues("dead", "default")
    one = _queues("dead", "default", "--limit", "1")

    # then each is a row with its message id, run, job, run status and error line
    rows = _rows(output)
    assert set(rows) == set(ids)
    for run, message_id in zip(runs, ids, strict=True):
        cells = rows[message_id]
        assert cells[1:5] == [f"#{run.pk}", "expire_matches", "queued", "0"], cells
        assert cells[5] == "RuntimeError: ledger locked"
    assert output.strip().splitlines()[-1] == "2 of 2 dead letters in default."
    assert one.strip().splitlines()[-1] == "1 of 2 dead letters in default."
    assert not ControlAction.objects.exists()


@pytest.mark.django_db
def test_dead_says_when_there_are_none(broker):
    assert _queues("dead", "money-urgent").strip() == "No dead letters in money-urgent."


@pytest.mark.django_db
def test_requeue_one_dead_letter_retries_its_failed_run(broker):
    # given two dead letters, the first of a run that failed
    runs, (first, second) = _dead_lettered(broker, 2)
    JobRun.objects.filter(pk=runs[0].pk).update(status=RunStatus.FAILED)

    # when the first is requeued
    output = _queues("requeue", "default", first, "--by", "ops", "--reason", "fixed")

    # then its run is retried by a new run, and the other letter stays dead
    retry = JobRun.objects.get(retry_of=runs[0])
    assert retry.status == RunStatus.QUEUED
    assert retry.requested_by == "cli:ops"
    assert _dead_ids() == [second]
    assert output.strip() == (
        "Requeued 1 dead letter of default: 1 failed run retried as new runs, 0 messages sent "
        "again as it was."
    )
    entry = ControlAction.objects.get()
    assert (entry.action, entry.actor, entry.reason) == (
        ControlAction.Action.DEAD_REQUEUED,
        "cli:ops",
        "fixed",
    )
    assert entry.before == {"message_ids": [first]}


@pytest.mark.django_db
def test_requeue_without_ids_sends_every_dead_letter_again(broker):
    # given two dead letters of runs that never ran
    _dead_lettered(broker, 2)
    waiting_before = _waiting("default")

    # when all are requeued
    output = _queues("requeue", "default", "--by", "ops")

    # then none is left dead and both messages wait again
    assert _dead_ids() == []
    assert _waiting("default") == waiting_before + 2
    assert "Requeued 2 dead letters of default" in output
    assert ControlAction.objects.get().after == {"requeued": 2, "runs_retried": 0}


@pytest.mark.django_db
def test_delete_one_dead_letter_by_id(broker):
    # given two dead letters
    runs, (first, second) = _dead_lettered(broker, 2)

    # when the first is deleted
    output = _queues("delete", "default", first, "--by", "ops", "--reason", "duplicate")

    # then only the second is left, the runs keep their records, and the delete is audited
    assert _dead_ids() == [second]
    assert JobRun.objects.count() == 2
    assert output.strip() == "Deleted 1 dead letter of default; their runs keep their records."
    entry = ControlAction.objects.get()
    assert (entry.action, entry.reason, entry.after) == (
        ControlAction.Action.DEAD_DELETED,
        "duplicate",
        {"deleted": 1},
    )


@pytest.mark.django_db
def test_delete_all_asks_for_yes_then_deletes_every_dead_letter(broker):
    # given two dead letters
    _dead_lettered(broker, 2)

    # when all are deleted without --yes, then with it
    with pytest.raises(CommandError) as error:
        _queues("delete", "default", "--by", "ops")
    left_after_refusal = _dead_ids()
    output = _queues("delete", "default", "--yes", "--by", "ops")

    # then the first changed nothing, the second deleted both
    assert str(error.value) == (
        "this deletes all 2 dead letters of default for good: add --yes, or name the message ids"
    )
    assert len(left_after_refusal) == 2
    assert _dead_ids() == []
    assert "Deleted 2 dead letters of default" in output
    assert ControlAction.objects.get().after == {"deleted": 2}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["requeue", "default", "no-such-id", "--by", "ops"],
            "no dead-lettered message 'no-such-id' in queue 'default'",
            id="requeue-id",
        ),
        pytest.param(
            ["delete", "default", "{id}", "no-such-id", "--by", "ops"],
            "no dead-lettered message 'no-such-id' in queue 'default'",
            id="delete-id",
        ),
        pytest.param(
            ["requeue", "nope", "--by", "ops"], "unknown queue 'nope'", id="requeue-queue"
        ),
        pytest.param(
            ["delete", "nope", "--yes", "--by", "ops"], "unknown queue 'nope'", id="delete-queue"
        ),
        pytest.param(["dead", "nope"], "unknown queue 'nope'", id="dead-queue"),
        pytest.param(["dead", "default", "--limit", "0"], "--limit must be from 1 to 500", id="0"),
        pytest.param(["dead", "default", "--limit", "501"], "--limit must be from 1", id="501"),
    ],
)
def test_bad_dead_letter_input_is_a_command_error_and_changes_nothing(broker, args, message):
    # given one dead letter
    _, (message_id,) = _dead_lettered(broker, 1)

    # when it is handled with bad input
    with pytest.raises(CommandError) as error:
        _queues(*[arg.format(id=message_id) for arg in args])

    # then the error names what is wrong, and the dead letter is still there
    assert message in str(error.value)
    assert _dead_ids() == [message_id]
    assert not ControlAction.objects.exists()


# --- from a terminal, and through a real worker -----------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        pytest.param(
            ["concurrency", "default", "0"],
            1,
            "CommandError: concurrency: A whole number from 1 to 10,000.",
            id="concurrency-0",
        ),
        pytest.param(
            ["concurrency", "default", "abc"],
            2,
            "manage.py queues concurrency: error: argument N: 'abc' is not a whole number or "
            "'default'",
            id="concurrency-abc",
        ),
        pytest.param(
            ["pause", "nope"],
            1,
            "CommandError: unknown queue 'nope'; known queues: default, engine, money, "
            "notifications, schedule",
            id="unknown-queue",
        ),
    ],
)
def test_bad_input_from_the_command_line_exits_non_zero_in_one_line(broker, args, status, message):
    # when the command runs as a process with bad input
    result = manage_py("queues", *args, "--by", "ops")

    # then it exits non-zero with one line and no traceback, and nothing changed
    assert result.returncode == status, result.stderr
    assert result.stderr.strip() == message
    assert result.stdout == ""
    assert not QueueState.objects.exists()
    assert not ControlAction.objects.exists()


@pytest.mark.worker
def test_a_paused_queue_keeps_its_run_until_resumed_through_a_real_worker(worker_process):
    # given a real worker, and the default queue paused from a terminal
    paused = manage_py("queues", "pause", "default", "--by", "ops", "--reason", "test")
    assert paused.returncode == 0, paused.stderr
    assert "Paused queue default" in paused.stdout
    # (a worker reads the controls at most once a second)
    time.sleep(1.5)

    # when a run is requested on it
    run = job_run_request(job="expire_matches", trigger=Trigger.CLI)

    # then it stays queued and unstarted while the queue is paused
    time.sleep(3)
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert not run.attempts.exists()
    assert _waiting("default") == 1

    # when the queue is resumed, the worker runs it
    _queues("resume", "default", "--by", "ops")
    deadline = time.monotonic() + 30
    while not run.is_finished and time.monotonic() < deadline:
        time.sleep(0.2)
        run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, worker_process.log_text()
    assert list(ControlAction.objects.order_by("id").values_list("action", flat=True)) == [
        ControlAction.Action.QUEUE_PAUSED,
        ControlAction.Action.QUEUE_RESUMED,
    ]


@pytest.mark.django_db
def test_runjob_says_when_a_run_it_queued_waits_for_a_paused_queue(broker):
    # given the default queue paused
    queue_pause(queue="default", by="ops")

    # when a run of one of its jobs is sent to the workers
    out = StringIO()
    call_command("runjob", "expire_matches", "--enqueue", stdout=out)

    # then the command says the run waits, and why
    assert "Not started yet: the default queue is paused" in out.getvalue()
