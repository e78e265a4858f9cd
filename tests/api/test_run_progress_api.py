"""Run detail shows a run's progress (a fanned-out run's combined from its shards) and how
long each attempt's message waited for a worker."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import JobRun, JobRunAttempt, RunStatus
from jobs.selectors import run_progress
from tests.api.helpers import finished_run

pytestmark = pytest.mark.django_db


def _shard(parent: JobRun, status: str, progress: dict) -> JobRun:
    return JobRun.objects.create(
        job=parent.job,
        trigger=parent.trigger,
        as_of=parent.as_of,
        status=status,
        parent=parent,
        progress=progress,
    )


def _saved(done: int, total: int | None, per_second: float | None, batches: int) -> dict:
    return {
        "done": done,
        "total": total,
        "what": "escrows",
        "batches": batches,
        "per_second": per_second,
        "seconds_left": None,
        "at": timezone.now().isoformat(),
    }


def test_a_running_run_shows_its_progress_and_its_attempts_wait(api):
    # given a run that saved its progress, whose attempt waited 1.5 s for a worker
    run = finished_run("release_escrows", status=RunStatus.SUCCEEDED)
    JobRun.objects.filter(pk=run.pk).update(progress=_saved(40, 100, 20.0, 4))
    attempt = run.attempts.get()
    queued = attempt.started_at - timedelta(milliseconds=1_500)
    JobRunAttempt.objects.filter(pk=attempt.pk).update(queued_at=queued, wait_ms=1_500)

    # when its detail is read
    data = api.get(f"/api/v1/runs/{run.pk}/").json()["data"]

    # then its progress is what it saved, and its attempt says when it was sent and how long
    # it waited
    progress = data["progress"]
    assert (progress["done"], progress["total"], progress["what"]) == (40, 100, "escrows")
    assert (progress["batches"], progress["per_second"]) == (4, 20.0)
    assert progress["shards_done"] is None and progress["shards_total"] is None
    (listed,) = data["attempts"]
    assert listed["wait_ms"] == 1_500
    assert listed["queued_at"] is not None


def test_a_run_that_reported_nothing_has_no_progress(api):
    run = finished_run("cleanup")

    data = api.get(f"/api/v1/runs/{run.pk}/").json()["data"]

    assert data["progress"] is None
    assert data["attempts"][0]["wait_ms"] is None


def test_a_fanned_out_run_combines_its_shards_progress(api):
    # given a waiting parent with a finished shard, a running one, one that ended with nothing
    # to do, and one not started yet
    parent = finished_run("release_escrows", status=RunStatus.SUCCEEDED)
    JobRun.objects.filter(pk=parent.pk).update(status=RunStatus.WAITING)
    parent.refresh_from_db()
    _shard(parent, RunStatus.SUCCEEDED, _saved(50, 50, 25.0, 5))
    running = _shard(parent, RunStatus.RUNNING, _saved(20, 60, 10.0, 2))
    _shard(parent, RunStatus.SUCCEEDED, {})
    queued = _shard(parent, RunStatus.QUEUED, {})

    # when its detail is read
    progress = api.get(f"/api/v1/runs/{parent.pk}/").json()["data"]["progress"]

    # then done and batches add up, the total is unknown while a shard has not started, the
    # rate is the running shards'
    assert (progress["done"], progress["total"], progress["batches"]) == (70, None, 7)
    assert (progress["shards_done"], progress["shards_total"]) == (2, 4)
    assert (progress["per_second"], progress["seconds_left"]) == (10.0, None)
    assert progress["what"] == "escrows"

    # and once the last shard reported, the total is known and the time left estimated
    JobRun.objects.filter(pk=queued.pk).update(
        status=RunStatus.RUNNING, progress=_saved(0, 40, 10.0, 0)
    )
    combined = run_progress(JobRun.objects.get(pk=parent.pk))
    assert (combined["done"], combined["total"], combined["per_second"]) == (70, 150, 20.0)
    assert combined["seconds_left"] == 4.0
    # a shard's own progress is its own
    assert run_progress(running)["done"] == 20


def test_an_unknown_run_is_a_404(api):
    assert api.get("/api/v1/runs/987654/").status_code == 404
