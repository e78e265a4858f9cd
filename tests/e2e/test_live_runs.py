"""A long release through a real worker, watched as it happens over the API: its progress
moves and never goes back, its log holds its start and summary, the workers endpoint shows the
worker in it (and gone, with its run, after a SIGKILL), and its wait is recorded and
exported."""

from __future__ import annotations

import signal
import time

import pytest
from django.test import Client

from jobs.models import FINISHED_STATUSES, JobRunAttempt, RunStatus
from jobs.services import job_run_request
from tests.api.helpers import token_client, user_with
from tests.factories import seeded_due_escrow_ids
from tests.workers import WorkerProcess

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

# Small batches, saved often: a few thousand escrows take seconds, with many progress saves.
WORKER_ENV = {
    "STEWARD_BATCH_SIZE": "10",
    "STEWARD_PROGRESS_SAVE_SECONDS": "0.5",
    "STEWARD_FANOUT_THRESHOLD": "0",
    "STEWARD_WORKER_HEARTBEAT_SECONDS": "1",
}
POLL_SECONDS = 0.2


@pytest.fixture
def worker(broker, tmp_path):
    process = WorkerProcess(log_path=tmp_path / "worker.log", env=WORKER_ENV)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def api(transactional_db):
    return token_client(user_with())


def _detail(api, run_id: int) -> dict:
    response = api.get(f"/api/v1/runs/{run_id}/")
    assert response.status_code == 200
    return response.json()["data"]


def _worker_in(api, run_id: int) -> dict | None:
    for listed in api.get("/api/v1/workers/").json()["data"]:
        if any(entry["run"] == run_id for entry in listed["runs"]):
            return listed
    return None


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_long_release_is_watched_live_through_the_api(worker, api, settings):
    # given a few thousand due escrows and a worker releasing them ten at a time
    ids = seeded_due_escrow_ids(3_000)
    run = job_run_request(job="release_escrows", trigger="api", requested_by="ops")

    # when its detail and the workers are read while it runs
    dones, seen_in_worker = [], None
    deadline = time.monotonic() + 50
    while time.monotonic() < deadline:
        data = _detail(api, run.pk)
        if data["progress"] is not None:
            dones.append(data["progress"]["done"])
        if data["status"] == RunStatus.RUNNING and seen_in_worker is None:
            seen_in_worker = _worker_in(api, run.pk)
        if data["status"] in FINISHED_STATUSES:
            break
        time.sleep(POLL_SECONDS)

    # then it succeeded, its progress was seen moving and never went back, ending at the total
    assert data["status"] == RunStatus.SUCCEEDED, data["error"]
    assert len(set(dones)) >= 3, dones
    assert dones == sorted(dones), dones
    assert data["progress"]["done"] == data["progress"]["total"] == len(ids)
    # the workers endpoint showed the worker alive in that run
    assert seen_in_worker is not None, "no worker listed the run while it ran"
    assert seen_in_worker["alive"] is True
    (entry,) = [e for e in seen_in_worker["runs"] if e["run"] == run.pk]
    assert (entry["job"], entry["attempt"]) == ("release_escrows", 1)
    # its log holds its start banner and its summary
    (attempt,) = api.get(f"/api/v1/runs/{run.pk}/log").json()["data"]["attempts"]
    lines = [line["line"] for line in attempt["lines"]]
    assert any("Running job: release_escrows" in line for line in lines), lines
    assert any("release_escrows summary:" in line for line in lines), lines
    assert any("Progress: " in line for line in lines), lines
    # its wait was recorded on the attempt and is exported
    (detail_attempt,) = data["attempts"]
    assert detail_attempt["wait_ms"] is not None and detail_attempt["queued_at"] is not None
    settings.STEWARD_METRICS_PUBLIC = True
    metrics = Client().get("/metrics").content.decode()
    assert any(
        line.startswith("steward_job_run_wait_seconds_count")
        and 'job="release_escrows"' in line
        and line.endswith(" 1.0")
        for line in metrics.splitlines()
    ), metrics


def test_a_killed_worker_is_shown_gone_with_the_run_it_left(worker, api, settings):
    # given a worker in the middle of a long release
    seeded_due_escrow_ids(4_000)
    run = job_run_request(job="release_escrows", trigger="api", requested_by="ops")
    listed = _wait_for(lambda: _worker_in(api, run.pk), 30, "the worker to list the run")
    assert listed["alive"] is True

    # when it is killed, and its heartbeat is older than STEWARD_WORKER_LOST_AFTER
    settings.STEWARD_WORKER_LOST_AFTER = 3
    worker.signal(signal.SIGKILL)
    worker.process.wait(timeout=10)

    # then the workers endpoint shows it gone, pointing at the run it left
    def gone():
        found = _worker_in(api, run.pk)
        return found if found and found["gone"] else None

    left = _wait_for(gone, 10, "the worker to be shown gone")
    assert left["name"] == listed["name"] and left["alive"] is False
    (entry,) = [e for e in left["runs"] if e["run"] == run.pk]
    assert (entry["job"], entry["status"]) == ("release_escrows", RunStatus.RUNNING)
    assert JobRunAttempt.objects.get(run=run).status == "running"
