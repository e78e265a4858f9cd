"""GET /healthz and /readyz: no login, JSON naming each check, 503 when not ready."""

import socket
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import FleetState, WorkerHeartbeat
from jobs.queues import queue_names

pytestmark = pytest.mark.django_db

CHECKS = {"database", "redis", "scheduler", "workers", "draining"}


def beat(name: str, role: str, *, queues=(), ago=timedelta(0), draining=False):
    now = timezone.now()
    WorkerHeartbeat.objects.create(
        name=name,
        role=role,
        host=socket.gethostname(),
        pid=int(name.split(":")[1]),
        queues=list(queues),
        threads=4,
        started_at=now - ago - timedelta(minutes=1),
        last_seen_at=now - ago,
        draining=draining,
    )


@pytest.fixture
def a_ready_fleet():
    """A fresh scheduler beat, and a worker beat serving every queue."""
    beat("host:1", WorkerHeartbeat.Role.SCHEDULER)
    beat("host:2", WorkerHeartbeat.Role.WORKER, queues=queue_names())


def readyz():
    response = APIClient().get("/readyz")
    return response.status_code, response.json()


def failing(body) -> set[str]:
    return {name for name, check in body["checks"].items() if not check["ok"]}


def test_healthz_answers_without_a_login():
    response = APIClient().get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_endpoints_take_no_writes(path):
    assert APIClient().post(path).status_code == 405


def test_readyz_is_503_naming_the_scheduler_and_workers_when_nothing_beat():
    status, body = readyz()

    assert status == 503
    assert body["status"] == "not ready"
    assert set(body["checks"]) == CHECKS
    assert failing(body) == {"scheduler", "workers"}
    assert "no scheduler beat" in body["checks"]["scheduler"]["detail"]
    assert body["checks"]["workers"]["detail"].startswith("no live worker for: ")
    for queue in queue_names():
        assert queue in body["checks"]["workers"]["detail"]


def test_readyz_is_200_with_a_fresh_scheduler_and_a_worker_for_every_queue(a_ready_fleet):
    status, body = readyz()

    assert status == 200, body
    assert body["status"] == "ready"
    assert failing(body) == set()
    assert body["checks"]["database"] == {"ok": True, "detail": "answers"}
    assert body["checks"]["redis"] == {"ok": True, "detail": "answers"}


def test_readyz_is_503_while_the_fleet_drains(a_ready_fleet):
    FleetState.objects.create(draining=True, draining_since=timezone.now())

    status, body = readyz()

    assert status == 503
    assert failing(body) == {"draining"}
    assert "draining since" in body["checks"]["draining"]["detail"]


def test_readyz_names_a_queue_no_live_worker_serves():
    # given a scheduler, and workers serving every queue but the urgent money lane
    beat("host:1", WorkerHeartbeat.Role.SCHEDULER)
    beat(
        "host:2", WorkerHeartbeat.Role.WORKER, queues=sorted(set(queue_names()) - {"money-urgent"})
    )

    status, body = readyz()

    assert status == 503
    assert failing(body) == {"workers"}
    assert body["checks"]["workers"]["detail"] == "no live worker for: money-urgent"


@override_settings(STEWARD_WORKER_LOST_AFTER=60)
@pytest.mark.parametrize(
    ("stale", "check"),
    [(WorkerHeartbeat.Role.SCHEDULER, "scheduler"), (WorkerHeartbeat.Role.WORKER, "workers")],
)
def test_readyz_counts_only_fresh_beats(stale, check):
    # given one of the two beats older than STEWARD_WORKER_LOST_AFTER
    for pid, role in enumerate(WorkerHeartbeat.Role.values, start=1):
        ago = timedelta(seconds=61 if role == stale else 0)
        beat(f"host:{pid}", role, queues=queue_names(), ago=ago)

    status, body = readyz()

    assert status == 503
    assert failing(body) == {check}


def test_readyz_does_not_count_a_worker_that_is_stopping():
    beat("host:1", WorkerHeartbeat.Role.SCHEDULER)
    beat("host:2", WorkerHeartbeat.Role.WORKER, queues=queue_names(), draining=True)

    status, body = readyz()

    assert status == 503
    assert failing(body) == {"workers"}
