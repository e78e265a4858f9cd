"""A run's page in the admin shows its progress (a fanned-out run's from its shards), each
attempt's own log lines folded with errors and warnings highlighted, and how long each attempt's
message waited; for whoever may see runs."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from jobs.models import AttemptStatus, JobRun, JobRunAttempt, RunStatus, Trigger
from jobs.services import job_run_request
from tests.api.helpers import finished_run, user_with
from tests.factories import HOLD, donation_at
from tests.ledger.helpers import run_job

pytestmark = pytest.mark.django_db

VIEW_RUNS = "jobs.view_jobrun"


def run_page(client, run) -> str:
    response = client.get(reverse("admin:jobs_jobrun_change", args=[run.pk]))
    assert response.status_code == 200
    return response.content.decode()


def running_run(*, progress: dict | None = None, parent=None, status=RunStatus.RUNNING) -> JobRun:
    run = job_run_request(enqueue=False, job="release_escrows", trigger=Trigger.CLI)
    JobRun.objects.filter(pk=run.pk).update(
        status=status,
        started_at=timezone.now() - timedelta(seconds=30),
        progress=progress or {},
        parent=parent,
    )
    run.refresh_from_db()
    return run


def field(page: str, name: str) -> str:
    """The text of the read-only field `name` on a change page, tags stripped."""
    found = re.search(
        rf'<div class="form-row field-{name}">(.*?)</div>\s*</div>\s*</div>', page, re.S
    )
    assert found, f"no field {name} on the page"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(1)))


def test_a_running_runs_page_shows_its_progress(admin_client_for):
    # given a run a fifth of the way through its escrows
    run = running_run(
        progress={
            "done": 1_000,
            "total": 5_000,
            "what": "escrows",
            "batches": 10,
            "per_second": 512.3,
            "seconds_left": 7.8,
            "at": timezone.now().isoformat(),
        }
    )
    client = admin_client_for(user_with(VIEW_RUNS))

    # when an operator opens its page
    page = run_page(client, run)

    # then the progress section says how far it got, how fast and how long it has left
    shown = field(page, "progress_shown")
    assert "1,000 / 5,000 escrows (20%)" in shown
    assert "10 batches" in shown
    assert "512/s" in shown
    assert "about 8 s left" in shown
    assert "width:20%" in page


def test_a_fanned_out_runs_page_shows_its_shards_combined(admin_client_for):
    # given a waiting parent whose one shard finished its 5,000 and the other is at 2,000
    parent = running_run(status=RunStatus.WAITING)
    at = timezone.now().isoformat()
    finished = running_run(
        parent=parent,
        status=RunStatus.SUCCEEDED,
        progress={"done": 5_000, "total": 5_000, "what": "escrows", "batches": 5, "at": at},
    )
    running_run(
        parent=parent,
        progress={
            "done": 2_000,
            "total": 5_000,
            "what": "escrows",
            "batches": 2,
            "per_second": 1_000.0,
            "seconds_left": 3.0,
            "at": at,
        },
    )
    assert finished.is_finished
    client = admin_client_for(user_with(VIEW_RUNS))

    # when an operator opens the parent's page
    shown = field(run_page(client, parent), "progress_shown")

    # then it shows both shards' work as one, and how many shards finished
    assert "7,000 / 10,000 escrows (70%)" in shown
    assert "shards 1 of 2 finished" in shown
    assert "7 batches" in shown


def test_each_attempts_lines_are_folded_with_errors_marked_and_its_wait_shown(
    admin_client_for,
):
    # given a failed run whose two attempts logged lines, the first an error, and whose
    # messages waited 1.2 s and 42 s for a worker
    run = finished_run("release_escrows", status=RunStatus.FAILED, error="boom")
    run.attempts.all().delete()
    now = timezone.now()
    for number, wait_ms, level, line in (
        (1, 1_234, "ERROR", "OperationalError: could not serialize access"),
        (2, 42_000, "WARNING", "Escrow 7 skipped: wallet locked"),
    ):
        JobRunAttempt.objects.create(
            run=run,
            number=number,
            status=AttemptStatus.FAILED,
            started_at=now,
            finished_at=now,
            queued_at=now - timedelta(milliseconds=wait_ms),
            wait_ms=wait_ms,
            log=[
                {"at": now.isoformat(), "level": "INFO", "line": f"Running attempt {number}"},
                {"at": now.isoformat(), "level": level, "line": line},
            ],
        )
    client = admin_client_for(user_with(VIEW_RUNS))

    # when an operator opens its page
    page = run_page(client, run)

    # then each attempt's lines are there, folded under a line counting them, newest first
    log = re.search(r'<div class="form-row field-log_text">(.*?)</fieldset>', page, re.S).group(1)
    folds = re.findall(r"<details( open)?><summary[^>]*>attempt (\d) .*?\((.*?)\)", log)
    assert folds == [("", "2", "2 lines, 1 warning"), ("", "1", "2 lines, 1 error")]
    assert "Running attempt 1" in log and "Running attempt 2" in log
    # and the error line is red, the warning amber
    assert re.search(r"color:#cf222e'>.*?OperationalError: could not serialize", log, re.S)
    assert re.search(r"color:#9a6700'>.*?Escrow 7 skipped", log, re.S)
    # and the attempts say how long their messages waited, and since when
    attempts = re.search(r'id="attempts-group"(.*?)</table>', page, re.S).group(1)
    assert "1.2 s" in attempts
    assert "42 s" in attempts
    assert "queued " in attempts


def test_a_run_executed_through_the_runner_shows_its_own_lines_and_final_progress(
    admin_client_for,
):
    # given a due escrow released by a real run through the runner
    donation_at(at=timezone.now() - HOLD - timedelta(minutes=5))
    run = run_job("release_escrows", as_of=timezone.now())
    assert run.status == RunStatus.SUCCEEDED
    client = admin_client_for(user_with(VIEW_RUNS))

    # when an operator opens its page
    page = run_page(client, run)

    # then its last saved progress and the lines its attempt logged are on it
    assert "1 / 1 escrows (100%)" in field(page, "progress_shown")
    assert "Running job: release_escrows" in page
    assert "Progress: 1/1 escrows (100%)" in page


def test_a_run_without_progress_or_lines_shows_neither_section(admin_client_for):
    # given a finished run that reported no progress and whose attempt logged nothing
    run = finished_run()
    client = admin_client_for(user_with(VIEW_RUNS))

    # when an operator opens its page, then it has no progress and no log section
    page = run_page(client, run)
    assert "field-progress_shown" not in page
    assert "field-log_text" not in page


def test_a_runs_progress_and_lines_need_the_right_to_see_runs(admin_client_for):
    # given a running run, and a staff user who may not see runs
    run = running_run(progress={"done": 1, "total": 2, "what": "escrows"})
    client = admin_client_for(user_with())

    # when they open its page, then it is refused as every run page is
    response = client.get(reverse("admin:jobs_jobrun_change", args=[run.pk]))
    assert response.status_code == 403
