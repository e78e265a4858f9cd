"""`GET /api/v1/workers/`: every process by its heartbeat, alive or gone, with the runs it
executes (a gone worker's are those it left)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import WorkerHeartbeat
from tests.api.helpers import finished_run, token_client, user_with

pytestmark = pytest.mark.django_db


def _heartbeat(name: str, *, seen_ago: timedelta, attempts: list[dict]) -> WorkerHeartbeat:
    now = timezone.now()
    return WorkerHeartbeat.objects.create(
        name=name,
        host=name.split(":")[0],
        pid=int(name.split(":")[1]),
        role=WorkerHeartbeat.Role.WORKER,
        queues=["default"],
        threads=2,
        started_at=now - timedelta(hours=1),
        last_seen_at=now - seen_ago,
        attempts=attempts,
    )


def test_workers_are_listed_alive_or_gone_with_their_runs(api, settings):
    # given a worker that beat just now in a run, and one silent past the lost-after time
    settings.STEWARD_WORKER_LOST_AFTER = 30
    live_run = finished_run("release_escrows", status="running")
    left_run = finished_run("expire_matches", status="running")
    _heartbeat(
        "alpha:1", seen_ago=timedelta(seconds=1), attempts=[{"run": live_run.pk, "attempt": 1}]
    )
    _heartbeat(
        "beta:2", seen_ago=timedelta(seconds=31), attempts=[{"run": left_run.pk, "attempt": 2}]
    )

    # when the workers are listed
    response = api.get("/api/v1/workers/")

    # then each says whether it is alive and the runs it is (or was) in, with their jobs
    assert response.status_code == 200
    workers = {worker["name"]: worker for worker in response.json()["data"]}
    alpha, beta = workers["alpha:1"], workers["beta:2"]
    assert (alpha["alive"], alpha["gone"]) == (True, False)
    assert alpha["runs"] == [
        {"run": live_run.pk, "job": "release_escrows", "attempt": 1, "status": "running"}
    ]
    assert (beta["alive"], beta["gone"]) == (False, True)
    assert beta["runs"] == [
        {"run": left_run.pk, "job": "expire_matches", "attempt": 2, "status": "running"}
    ]
    assert (alpha["host"], alpha["pid"], alpha["queues"], alpha["threads"]) == (
        "alpha",
        1,
        ["default"],
        2,
    )


def test_a_run_pruned_since_the_beat_is_left_out(api):
    _heartbeat("gamma:3", seen_ago=timedelta(seconds=1), attempts=[{"run": 987654, "attempt": 1}])

    (worker,) = api.get("/api/v1/workers/").json()["data"]

    assert worker["runs"] == []


def test_the_workers_need_staff_as_run_detail_does(client):
    assert client.get("/api/v1/workers/").status_code == 401
    stranger = token_client(user_with(staff=False))
    assert stranger.get("/api/v1/workers/").status_code == 403
