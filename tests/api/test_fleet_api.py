"""GET fleet/ (the workers by their heartbeats, and the drain) and POST fleet/drain, drain/end."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.exceptions import DRAIN_PERMISSION
from jobs.models import ControlAction, FleetState, WorkerHeartbeat
from tests.api.helpers import token_client, user_with

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "/api/v1/fleet/", None),
    ("post", "/api/v1/fleet/drain", DRAIN_PERMISSION),
    ("post", "/api/v1/fleet/drain/end", DRAIN_PERMISSION),
]


def heartbeat(name: str, *, ago: timedelta = timedelta(0), **fields) -> WorkerHeartbeat:
    now = timezone.now()
    return WorkerHeartbeat.objects.create(
        name=name,
        host=name.split(":")[0],
        pid=int(name.split(":")[1]),
        started_at=now - ago - timedelta(minutes=5),
        last_seen_at=now - ago,
        **fields,
    )


def draining() -> bool:
    return FleetState.objects.filter(draining=True).exists()


@pytest.mark.parametrize(("method", "path", "perm"), ENDPOINTS)
@pytest.mark.parametrize("who", ["anonymous", "not staff", "staff without it", "staff with it"])
def test_every_fleet_endpoint_answers_by_who_asks(who, method, path, perm):
    clients = {
        "anonymous": lambda: APIClient(),
        "not staff": lambda: token_client(user_with(DRAIN_PERMISSION, staff=False)),
        "staff without it": lambda: token_client(user_with("jobs.pause_queue")),
        "staff with it": lambda: token_client(user_with(*filter(None, [perm]))),
    }
    expected = {
        "anonymous": 401,
        "not staff": 403,
        "staff without it": 403 if perm else 200,
        "staff with it": 200,
    }

    client = clients[who]()
    if method == "get":
        response = client.get(path)
    else:
        response = client.post(path, {"reason": "r"}, format="json")

    assert response.status_code == expected[who]
    if response.status_code == 403 and who == "staff without it":
        assert perm in response.json()["error"]["message"]
        assert not ControlAction.objects.exists()


@override_settings(STEWARD_WORKER_LOST_AFTER=60)
def test_the_fleet_lists_every_heartbeat_and_whether_it_is_alive(api):
    # given a live worker, a live scheduler and a worker silent for longer than allowed
    heartbeat(
        "web-1:101",
        queues=["default", "default-urgent"],
        threads=8,
        attempts=[{"run": 7, "attempt": 1}],
    )
    heartbeat("web-1:102", role=WorkerHeartbeat.Role.SCHEDULER)
    heartbeat("web-2:201", ago=timedelta(seconds=61), draining=True, queues=["money"])

    # when the fleet is read
    response = api.get("/api/v1/fleet/")

    # then each process is listed with its beat, the scheduler first
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["draining"], data["draining_since"]) == (False, None)
    workers = {worker["name"]: worker for worker in data["workers"]}
    assert [worker["name"] for worker in data["workers"]] == ["web-1:102", "web-1:101", "web-2:201"]
    live = workers["web-1:101"]
    assert set(live) == {
        "name",
        "role",
        "host",
        "pid",
        "queues",
        "threads",
        "started_at",
        "last_seen_at",
        "draining",
        "attempts",
        "alive",
    }
    assert (live["role"], live["host"], live["pid"], live["threads"]) == ("worker", "web-1", 101, 8)
    assert live["queues"] == ["default", "default-urgent"]
    assert live["attempts"] == [{"run": 7, "attempt": 1}]
    assert (live["alive"], live["draining"]) == (True, False)
    assert workers["web-1:102"]["role"] == "scheduler"
    assert (workers["web-2:201"]["alive"], workers["web-2:201"]["draining"]) == (False, True)


@override_settings(STEWARD_WORKER_LOST_AFTER=600)
def test_a_heartbeat_is_alive_for_as_long_as_worker_lost_after_says(api):
    heartbeat("web-2:201", ago=timedelta(seconds=300))

    [worker] = api.get("/api/v1/fleet/").json()["data"]["workers"]

    assert worker["alive"] is True


def test_draining_and_ending_the_drain_are_recorded_with_who_and_why(operator):
    client = token_client(user_with(DRAIN_PERMISSION))

    # when an operator drains the fleet
    response = client.post("/api/v1/fleet/drain", {"reason": "deploy 42"}, format="json")

    # then it drains, and the fleet says since when
    assert response.status_code == 200
    body = response.json()
    assert body["data"]["draining"] is True
    assert body["data"]["draining_since"] is not None
    assert body["message"] == "The fleet is draining: no worker takes a new message"
    fleet = client.get("/api/v1/fleet/").json()["data"]
    assert fleet["draining"] is True
    assert fleet["draining_since"] == body["data"]["draining_since"]

    # when they end it
    response = client.post("/api/v1/fleet/drain/end", {"reason": "deployed"}, format="json")

    # then the workers take messages again, and both are audited
    assert response.status_code == 200
    assert response.json()["data"] == {"draining": False, "draining_since": None}
    assert not draining()
    assert list(ControlAction.objects.values_list("action", "reason")) == [
        ("drain_ended", "deployed"),
        ("drain_started", "deploy 42"),
    ]


def test_draining_twice_changes_nothing_more(operator):
    client = token_client(user_with(DRAIN_PERMISSION))
    first = client.post("/api/v1/fleet/drain", {"reason": "a"}, format="json").json()

    second = client.post("/api/v1/fleet/drain", {"reason": "b"}, format="json")

    assert second.status_code == 200
    assert second.json()["data"] == first["data"]
    assert ControlAction.objects.count() == 1


@pytest.mark.parametrize("path", ["/api/v1/fleet/drain", "/api/v1/fleet/drain/end"])
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"reason": " "}, "reason"),
        ({"reason": "r", "timeout": 30}, "timeout"),
    ],
)
def test_a_bad_drain_body_is_a_400_on_the_field_and_changes_nothing(path, body, field):
    # given a fleet in the state the request would change
    if path.endswith("/end"):
        FleetState.objects.create(draining=True, draining_since=timezone.now())
    was_draining = draining()
    client = token_client(user_with(DRAIN_PERMISSION))

    response = client.post(path, body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert draining() == was_draining
    assert not ControlAction.objects.exists()
