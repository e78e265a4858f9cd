"""`runjob` shows a run's progress as it goes: a rich bar on a terminal (forced here with
TTY_COMPATIBLE=1, rich's own switch, over a StringIO), fed from the progress the run saves;
off a terminal no second copy of the runner's progress lines for a run executed here, and a
plain progress line every few seconds while waiting on the workers; --json output untouched."""

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from rich.console import Console

from jobs.management.commands._progress import ProgressDisplay, progress_line
from jobs.models import JobRun, RunStatus
from tests.factories import HOLD, donation_at

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def runjob(*args: str) -> str:
    out = StringIO()
    call_command("runjob", *args, stdout=out)
    return out.getvalue()


def due_escrows(count: int) -> None:
    for _ in range(count):
        donation_at(at=timezone.now() - HOLD - timedelta(minutes=5))


@pytest.mark.django_db
def test_off_a_terminal_a_run_executed_here_prints_no_second_progress_line(caplog):
    # given two due escrows, and output that is not a terminal
    due_escrows(2)

    # when the job runs in this process
    with caplog.at_level("INFO", logger="steward.jobs"):
        output = runjob("release_escrows")

    # then the runner logged its progress line, and the command printed no copy of it
    assert "Progress: 2/2 escrows (100%)" in caplog.text
    assert "Progress:" not in output
    run = JobRun.objects.get(job="release_escrows")
    assert f"release_escrows run #{run.pk}: succeeded" in output


@pytest.mark.django_db
def test_on_a_terminal_a_run_executed_here_draws_a_bar_with_the_log_above_it(monkeypatch):
    # given three due escrows, and output rich takes for a terminal
    due_escrows(3)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "140")

    # when the job runs in this process
    output = ANSI.sub("", runjob("release_escrows"))

    # then the bar ends full, with the run's counts, and the runner's lines come above it
    run = JobRun.objects.get(job="release_escrows")
    assert run.status == RunStatus.SUCCEEDED
    assert re.search(rf"release_escrows #{run.pk} .*100% 3/3 escrows", output)
    assert "Running job: release_escrows" in output
    assert output.index("Running job") < output.rindex("3/3 escrows")
    # and the report follows
    assert f"release_escrows run #{run.pk}: succeeded" in output


@pytest.mark.django_db
def test_json_output_has_no_bar_even_on_a_terminal(monkeypatch):
    # given a due escrow, and output rich takes for a terminal
    due_escrows(1)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")

    # when the job runs with --json
    output = runjob("release_escrows", "--json")

    # then the output is the run as JSON and nothing else
    (line,) = output.strip().splitlines()
    assert json.loads(line)["summary"]["escrows_released"] == 1


def test_the_bar_shows_a_fanned_out_runs_shards_and_pace():
    # given a display on a forced terminal
    out = StringIO()
    console = Console(file=out, force_terminal=True, width=140)

    # when it is shown a fanned-out run's combined progress
    with ProgressDisplay(console, title="release_escrows #9", lines=True) as display:
        display.show(
            {
                "done": 7_000,
                "total": 10_000,
                "what": "escrows",
                "batches": 7,
                "per_second": 1_000.0,
                "seconds_left": 3.0,
                "shards_done": 1,
                "shards_total": 2,
            }
        )

    # then the bar says how far, in how many shards and how fast
    shown = ANSI.sub("", out.getvalue())
    assert "release_escrows #9" in shown
    assert "70%" in shown
    assert "7,000/10,000 escrows, shards 1/2" in shown
    assert "7 batches, 1,000/s, 3 s left" in shown
    # and no plain progress line besides it
    assert "Progress:" not in shown


def test_off_a_terminal_progress_lines_are_few():
    # given a display writing plain lines off a terminal
    out = StringIO()
    display = ProgressDisplay(Console(file=out), title="release_escrows #9", lines=True)

    # when the progress is shown three times in a row, moving
    for done in (1_000, 2_000, 3_000):
        display.show({"done": done, "total": 5_000, "what": "escrows"})
    display.show(None)

    # then only the first is printed: at most one line every few seconds
    assert out.getvalue() == "Progress: 1,000/5,000 escrows (20%)\n"
    assert progress_line({"done": 5, "total": None, "what": "notifications"}) == (
        "Progress: 5 notifications"
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_waiting_on_a_worker_prints_the_runs_progress_lines(worker_process):
    # given two due escrows and a real worker
    due_escrows(2)

    # when the run is sent to the worker and waited for, off a terminal
    output = runjob("release_escrows", "--enqueue", "--wait", "--timeout", "60")

    # then the progress the worker saved is printed here, before the report
    run = JobRun.objects.get(job="release_escrows")
    assert run.status == RunStatus.SUCCEEDED, output + worker_process.log_text()
    assert "Progress: 2/2 escrows (100%)" in output
    assert output.index("Progress:") < output.index(f"release_escrows run #{run.pk}: succeeded")
