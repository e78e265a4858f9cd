"""Queue control through the API: the overviews, pause and resume, concurrency, clearing, the
dead letters and the rate limits; who may do each, and bad input that changes nothing."""

import time
import uuid

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from jobs.actors import actor_for
from jobs.controls import queue_pause
from jobs.exceptions import (
    CLEAR_QUEUE_PERMISSION,
    DELETE_DEAD_PERMISSION,
    PAUSE_QUEUE_PERMISSION,
    QUEUE_LIMITS_PERMISSION,
    REQUEUE_DEAD_PERMISSION,
    TRIGGER_PERMISSION,
    VIEW_RUNS_PERMISSION,
)
from jobs.fleet import controlled_queues
from jobs.models import ControlAction, JobRun, QueueState, RateLimitSetting, RunStatus, Trigger
from jobs.queues import queue_names, queue_stats
from jobs.services import job_run_request
from tests.api.helpers import token_client, user_with
from tests.scheduling.test_queues import dead_letter_one

pytestmark = pytest.mark.django_db

PERMISSIONS = {
    PAUSE_QUEUE_PERMISSION,
    CLEAR_QUEUE_PERMISSION,
    QUEUE_LIMITS_PERMISSION,
    REQUEUE_DEAD_PERMISSION,
    DELETE_DEAD_PERMISSION,
    VIEW_RUNS_PERMISSION,
}
# Each endpoint with the permission it needs (None: staff alone) and a request that succeeds.
ENDPOINTS = [
    ("get", "/api/v1/queues/", None, None, 200),
    ("post", "/api/v1/queues/money/pause", PAUSE_QUEUE_PERMISSION, {"reason": "r"}, 200),
    ("post", "/api/v1/queues/money/resume", PAUSE_QUEUE_PERMISSION, {"reason": "r"}, 200),
    (
        "post",
        "/api/v1/queues/money/concurrency",
        QUEUE_LIMITS_PERMISSION,
        {"concurrency": 3, "reason": "r"},
        200,
    ),
    (
        "post",
        "/api/v1/queues/money/clear",
        CLEAR_QUEUE_PERMISSION,
        {"confirm": "money", "reason": "r"},
        200,
    ),
    ("get", "/api/v1/queues/money/dead-letters", VIEW_RUNS_PERMISSION, None, 200),
    (
        "post",
        "/api/v1/queues/money/dead-letters/requeue",
        REQUEUE_DEAD_PERMISSION,
        {"reason": "r"},
        200,
    ),
    (
        "post",
        "/api/v1/queues/money/dead-letters/delete",
        DELETE_DEAD_PERMISSION,
        {"reason": "r"},
        200,
    ),
    ("get", "/api/v1/rate-limits/", None, None, 200),
    (
        "post",
        "/api/v1/rate-limits/money",
        QUEUE_LIMITS_PERMISSION,
        {"limit": 100, "window_seconds": 60, "reason": "r"},
        200,
    ),
]


def call(client, method, path, body=None):
    if method == "get":
        return client.get(path)
    return client.post(path, body, format="json")


def audit_count() -> int:
    return ControlAction.objects.count()


def queue_state(name: str) -> tuple | None:
    return QueueState.objects.filter(queue=name).values_list("paused", "concurrency").first()


@pytest.fixture
def operator(db):
    """Staff holding every permission of the queue controls (the `api` client is theirs)."""
    return user_with(*PERMISSIONS)


# --- Who may ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "perm", "body", "ok"), ENDPOINTS)
@pytest.mark.parametrize("who", ["anonymous", "not staff", "staff without it", "staff with it"])
def test_every_queue_endpoint_answers_by_who_asks(who, method, path, perm, body, ok, broker):
    # given a client of each kind; the non-staff one holds the permission, to no avail
    clients = {
        "anonymous": lambda: APIClient(),
        "not staff": lambda: token_client(user_with(*PERMISSIONS, staff=False)),
        "staff without it": lambda: token_client(
            user_with(*(PERMISSIONS - {perm} if perm else ()))
        ),
        "staff with it": lambda: token_client(user_with(*filter(None, [perm]))),
    }
    expected = {
        "anonymous": 401,
        "not staff": 403,
        "staff without it": 403 if perm else ok,
        "staff with it": ok,
    }

    # when it calls the endpoint
    response = call(clients[who](), method, path, body)

    # then it is told who it must be, or served
    assert response.status_code == expected[who], response.json()
    if response.status_code == 403 and who == "staff without it":
        assert perm in response.json()["error"]["message"]


# --- The overviews ------------------------------------------------------------------------------


def test_the_queue_list_shows_each_lane_with_its_controls_and_the_drain(api, broker):
    # given the money queue paused with a concurrency, and a message on the default queue
    QueueState.objects.create(queue="money", paused=True, concurrency=4)
    RateLimitSetting.objects.create(name="money", limit=100, window_seconds=60)
    actor_for("expire_matches").send(1)

    # when the queues are read
    response = api.get("/api/v1/queues/")

    # then every Dramatiq queue is listed, its counts as before and its queue's controls
    assert response.status_code == 200
    body = response.json()
    assert body["draining"] is False
    queues = {queue["name"]: queue for queue in body["data"]}
    assert set(queues) == set(queue_names())
    assert queues["default"] == {
        "name": "default",
        "waiting": 1,
        "delayed": 0,
        "in_flight": 0,
        "dead_lettered": 0,
        "queue": "default",
        "lane": "normal",
        "paused": False,
        "concurrency": None,
        "concurrency_source": "",
        "rate_limit": None,
    }
    for name in ("money", "money-urgent"):
        assert queues[name]["queue"] == "money"
        assert queues[name]["paused"] is True
        assert queues[name]["concurrency"] == 4
        assert queues[name]["concurrency_source"] == "run time"
        assert queues[name]["rate_limit"] == {"limit": 100, "window_seconds": 60}
    assert queues["money-urgent"]["lane"] == "urgent"


# --- Pause and resume ---------------------------------------------------------------------------


def test_a_run_triggered_on_a_paused_queue_is_told_it_waits(broker):
    # given the default queue paused, and an operator who may trigger runs
    queue_pause(queue="default", by="ops")
    api = APIClient()
    api.force_authenticate(user_with(TRIGGER_PERMISSION))

    # when a run of one of its jobs is triggered
    response = api.post("/api/v1/jobs/expire_matches/trigger", {"reason": "by hand"}, format="json")

    # then it is queued, and the answer says why it does not start yet
    assert response.status_code == 202
    assert response.json()["message"].endswith(
        "not started yet: the default queue is paused; it starts once the queue is resumed"
    )


def test_pausing_and_resuming_a_queue_is_recorded_with_who_and_why(api, operator, broker):
    # when an operator pauses the money queue
    response = api.post("/api/v1/queues/money/pause", {"reason": "bank outage"}, format="json")

    # then it is paused and the audit says who, why, before and after
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Queue 'money' paused"
    assert body["data"]["queue"] == "money"
    assert body["data"]["paused"] is True
    assert queue_state("money") == (True, None)
    entry = ControlAction.objects.get()
    assert (entry.action, entry.target_type, entry.target) == ("queue_paused", "queue", "money")
    assert (entry.actor, entry.reason) == (operator.username, "bank outage")
    assert (entry.before, entry.after) == ({"paused": False}, {"paused": True})

    # when they resume it
    response = api.post("/api/v1/queues/money/resume", {"reason": "bank back"}, format="json")

    # then it runs again, and that is recorded too
    assert response.status_code == 200
    assert response.json()["data"]["paused"] is False
    assert queue_state("money") == (False, None)
    assert ControlAction.objects.first().action == "queue_resumed"


@pytest.mark.parametrize("action", ["pause", "resume", "concurrency"])
@pytest.mark.parametrize("name", ["money-urgent", "nope", "default.XQ"])
def test_a_lane_or_unknown_queue_is_a_404_naming_the_controlled_queues(api, action, name, broker):
    body = {"reason": "r", "concurrency": 2} if action == "concurrency" else {"reason": "r"}

    response = api.post(f"/api/v1/queues/{name}/{action}", body, format="json")

    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert f"known queues: {', '.join(controlled_queues())}" in message
    assert audit_count() == 0
    assert not QueueState.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": ""}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"reason": 5}, "reason"),
        ({"reason": "r", "paused": True}, "paused"),
    ],
)
@pytest.mark.parametrize("action", ["pause", "resume"])
def test_a_bad_pause_body_is_a_400_on_the_field_and_changes_nothing(api, action, body, field):
    # given the money queue in the state the action would change
    QueueState.objects.create(queue="money", paused=action == "resume")

    response = api.post(f"/api/v1/queues/money/{action}", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert queue_state("money") == (action == "resume", None)
    assert audit_count() == 0


def test_malformed_json_is_a_400_and_changes_nothing(api):
    response = api.post(
        "/api/v1/queues/money/pause", '{"reason": "r"', content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["success"] is False
    assert queue_state("money") is None
    assert audit_count() == 0


# --- Concurrency --------------------------------------------------------------------------------


@override_settings(STEWARD_QUEUE_CONCURRENCY={"money": 8})
def test_a_queues_concurrency_is_set_and_given_back_to_the_environment(api, broker):
    # when an operator caps the money queue at 2
    response = api.post(
        "/api/v1/queues/money/concurrency", {"concurrency": 2, "reason": "slow"}, format="json"
    )

    # then the cap is the run-time one, audited with the environment's value before
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["concurrency"], data["concurrency_source"]) == (2, "run time")
    entry = ControlAction.objects.get()
    assert (entry.before, entry.after) == ({"concurrency": 8}, {"concurrency": 2})

    # when they set it back to null
    response = api.post(
        "/api/v1/queues/money/concurrency", {"concurrency": None, "reason": "ok"}, format="json"
    )

    # then the environment's value is in force again
    data = response.json()["data"]
    assert (data["concurrency"], data["concurrency_source"]) == (8, "environment")
    assert queue_state("money") == (False, None)


@pytest.mark.parametrize(
    "concurrency", [0, -1, "abc", "3", 1.5, 10_001, 10**30, True, [2], {"n": 2}]
)
def test_a_bad_concurrency_is_a_400_on_the_field_and_changes_nothing(api, concurrency):
    # given a queue capped at 5
    QueueState.objects.create(queue="money", concurrency=5)

    # when an operator sends a concurrency that is not a whole number from 1 to 10,000
    response = api.post(
        "/api/v1/queues/money/concurrency",
        {"concurrency": concurrency, "reason": "r"},
        format="json",
    )

    # then it is refused on that field and the cap stays
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["concurrency"]
    assert queue_state("money") == (False, 5)
    assert audit_count() == 0


def test_a_concurrency_must_be_given(api):
    response = api.post("/api/v1/queues/money/concurrency", {"reason": "r"}, format="json")

    assert response.status_code == 400
    assert "concurrency" in response.json()["error"]["fields"]
    assert audit_count() == 0


# --- Clearing -----------------------------------------------------------------------------------


def test_clearing_a_queue_drops_its_messages_and_cancels_their_runs(api, operator, broker):
    # given two queued runs whose messages wait on the default queue
    runs = [job_run_request(job="expire_matches", trigger=Trigger.CLI) for _ in range(2)]
    for run in runs:
        actor_for("expire_matches").send(run.pk)

    # when an operator clears it, confirming its name
    response = api.post(
        "/api/v1/queues/default/clear",
        {"confirm": "default", "reason": "bad deploy"},
        format="json",
    )

    # then the messages are gone and the runs cancelled, recorded as theirs
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"queue": "default", "messages": 2, "runs_cancelled": 2}
    assert body["message"] == "Cleared 2 message(s) of default; 2 run(s) cancelled"
    assert set(JobRun.objects.values_list("status", flat=True)) == {RunStatus.CANCELLED}
    assert ControlAction.objects.get().actor == operator.username


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"confirm": "money", "reason": "r"}, "confirm"),
        ({"confirm": "DEFAULT", "reason": "r"}, "confirm"),
        ({"reason": "r"}, "confirm"),
        ({"confirm": 1, "reason": "r"}, "confirm"),
        ({"confirm": "default"}, "reason"),
        ({"confirm": "default", "reason": "x" * 501}, "reason"),
    ],
)
def test_a_clear_without_its_confirmation_is_a_400_and_keeps_every_message(
    api, body, field, broker
):
    # given a message waiting on the default queue
    actor_for("expire_matches").send(1)

    response = api.post("/api/v1/queues/default/clear", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert next(stats for stats in queue_stats() if stats.name == "default").waiting == 1
    assert audit_count() == 0


def test_clearing_an_unknown_queue_is_a_404(api, broker):
    response = api.post(
        "/api/v1/queues/nope/clear", {"confirm": "nope", "reason": "r"}, format="json"
    )

    assert response.status_code == 404
    assert "known queues" in response.json()["error"]["message"]
    assert audit_count() == 0


# --- Dead letters -------------------------------------------------------------------------------


@pytest.fixture
def dead_run(broker):
    """A failed run whose message ended in the default queue's dead letters."""
    run = job_run_request(enqueue=False, job="expire_matches", trigger=Trigger.CLI)
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, error="boom")
    actor_for("expire_matches").send(run.pk)
    message = dead_letter_one(broker, "default")
    return run, message


def dead_lettered(name: str = "default") -> int:
    return next(stats for stats in queue_stats() if stats.name == name).dead_lettered


def test_dead_letters_are_listed_with_their_runs(api, dead_run):
    run, message = dead_run

    response = api.get("/api/v1/queues/default/dead-letters")

    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["queue"], data["total"]) == ("default", 1)
    [letter] = data["dead_letters"]
    assert letter["message_id"] == message.message_id
    assert letter["actor"] == message.actor_name
    assert letter["run"]["id"] == run.pk
    assert letter["run"]["status"] == "failed"


def test_the_dead_letter_limit_bounds_the_listing_not_the_total(api, broker):
    # given three dead letters on the default queue
    for run_id in (1, 2, 3):
        actor_for("expire_matches").send(run_id)
    for _ in range(3):
        dead_letter_one(broker, "default")

    data = api.get("/api/v1/queues/default/dead-letters?limit=2").json()["data"]

    assert data["total"] == 3
    assert len(data["dead_letters"]) == 2
    assert (
        len(api.get("/api/v1/queues/default/dead-letters?limit=500").json()["data"]["dead_letters"])
        == 3
    )


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=abc", "limit=1.5", "limt=2"])
def test_a_bad_dead_letter_query_is_a_400_on_the_field(api, query, broker):
    response = api.get(f"/api/v1/queues/default/dead-letters?{query}")

    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {query.split("=")[0]}


def test_the_dead_letters_of_an_unknown_queue_are_a_404(api, broker):
    assert api.get("/api/v1/queues/nope/dead-letters").status_code == 404


def test_requeueing_one_dead_letter_retries_its_run(api, operator, dead_run):
    run, message = dead_run

    response = api.post(
        "/api/v1/queues/default/dead-letters/requeue",
        {"message_ids": [message.message_id], "reason": "fixed the bug"},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["data"] == {"queue": "default", "requeued": 1, "runs_retried": 1}
    retry = JobRun.objects.get(retry_of=run)
    assert (retry.requested_by, retry.reason) == (operator.username, "fixed the bug")
    assert dead_lettered() == 0
    assert ControlAction.objects.get().action == "dead_requeued"


def test_deleting_the_dead_letters_drops_them_and_keeps_their_runs(api, dead_run):
    run, _ = dead_run

    response = api.post(
        "/api/v1/queues/default/dead-letters/delete", {"reason": "obsolete"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["data"] == {"queue": "default", "deleted": 1}
    assert dead_lettered() == 0
    assert JobRun.objects.get(pk=run.pk).status == RunStatus.FAILED
    entry = ControlAction.objects.get()
    assert (entry.action, entry.reason, entry.before["runs"]) == (
        "dead_deleted",
        "obsolete",
        [run.pk],
    )


@pytest.mark.parametrize("action", ["requeue", "delete"])
def test_an_unknown_dead_letter_is_a_404_and_nothing_is_taken(api, action, dead_run):
    _, message = dead_run

    response = api.post(
        f"/api/v1/queues/default/dead-letters/{action}",
        {"message_ids": [message.message_id, str(uuid.uuid4())], "reason": "r"},
        format="json",
    )

    assert response.status_code == 404
    assert "no dead-lettered message" in response.json()["error"]["message"]
    assert dead_lettered() == 1
    assert audit_count() == 0


@pytest.mark.parametrize(
    "message_ids",
    [[], ["not-a-uuid"], [42], "all", None, [str(uuid.uuid4())] * 1_001],
)
@pytest.mark.parametrize("action", ["requeue", "delete"])
def test_bad_message_ids_are_a_400_and_nothing_is_taken(api, action, message_ids, dead_run):
    # an empty list in particular must not mean "all of them"
    response = api.post(
        f"/api/v1/queues/default/dead-letters/{action}",
        {"message_ids": message_ids, "reason": "r"},
        format="json",
    )

    assert response.status_code == 400
    assert "message_ids" in response.json()["error"]["fields"]
    assert dead_lettered() == 1
    assert audit_count() == 0


# --- Rate limits --------------------------------------------------------------------------------


@override_settings(STEWARD_QUEUE_RATE_LIMITS="channel-sms=10/60")
def test_rate_limits_are_listed_set_and_given_back_to_the_environment(api, broker):
    # given the environment's limit on SMS
    limits = {limit["name"]: limit for limit in api.get("/api/v1/rate-limits/").json()["data"]}
    assert limits["channel-sms"] == {
        "name": "channel-sms",
        "limit": 10,
        "window_seconds": 60,
        "source": "environment",
    }
    assert limits["money"]["source"] == ""

    # when an operator raises it
    response = api.post(
        "/api/v1/rate-limits/channel-sms",
        {"limit": 30, "window_seconds": 60, "reason": "campaign"},
        format="json",
    )

    # then the run-time value is in force, audited with the one before
    assert response.status_code == 200
    assert response.json()["data"]["source"] == "run time"
    assert response.json()["message"] == "Rate limit 'channel-sms': 30 per 60 s"
    entry = ControlAction.objects.get()
    assert (entry.before, entry.after) == ({"rate_limit": "10/60s"}, {"rate_limit": "30/60s"})

    # when they clear it
    response = api.post(
        "/api/v1/rate-limits/channel-sms",
        {"limit": None, "window_seconds": None, "reason": "over"},
        format="json",
    )

    # then the environment's is back
    assert response.json()["data"]["limit"] == 10
    assert not RateLimitSetting.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"limit": 0, "window_seconds": 60}, "limit"),
        ({"limit": -1, "window_seconds": 60}, "limit"),
        ({"limit": "abc", "window_seconds": 60}, "limit"),
        ({"limit": 1_000_001, "window_seconds": 60}, "limit"),
        ({"limit": 10, "window_seconds": 0}, "window_seconds"),
        ({"limit": 10, "window_seconds": 86_401}, "window_seconds"),
        ({"limit": 10, "window_seconds": None}, "limit"),
        ({"limit": None, "window_seconds": 60}, "limit"),
        ({"window_seconds": 60}, "limit"),
        ({"limit": 10, "window_seconds": 60, "reason": "x" * 501}, "reason"),
    ],
)
def test_a_bad_rate_limit_is_a_400_on_the_field_and_changes_nothing(api, body, field):
    # given a limit set at run time
    RateLimitSetting.objects.create(name="money", limit=5, window_seconds=1)

    response = api.post("/api/v1/rate-limits/money", {"reason": "r", **body}, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert RateLimitSetting.objects.values_list("limit", "window_seconds").get() == (5, 1)
    assert audit_count() == 0


def test_an_unknown_rate_limit_is_a_404(api):
    response = api.post(
        "/api/v1/rate-limits/nope", {"limit": 1, "window_seconds": 1, "reason": "r"}, format="json"
    )

    assert response.status_code == 404
    assert "unknown rate limit 'nope'" in response.json()["error"]["message"]
    assert not RateLimitSetting.objects.exists()
    assert audit_count() == 0


# --- Through a real worker ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_queue_paused_through_the_api_holds_its_runs_until_resumed(worker_process):
    # given an operator allowed to pause queues and run jobs
    client = token_client(user_with(PAUSE_QUEUE_PERMISSION, "jobs.trigger_jobrun"))

    # when they pause the default queue and then ask for a run on it
    response = client.post("/api/v1/queues/default/pause", {"reason": "deploy"}, format="json")
    assert response.status_code == 200
    time.sleep(2)  # the workers read the controls at most once a second
    response = client.post(
        "/api/v1/jobs/expire_matches/trigger", {"reason": "while paused"}, format="json"
    )
    assert response.status_code == 202
    run_id = response.json()["data"]["id"]

    # then the run stays queued, its message waiting
    time.sleep(3)
    run = JobRun.objects.get(pk=run_id)
    assert (run.status, run.attempt_count) == (RunStatus.QUEUED, 0), worker_process.log_text()

    # when they resume the queue
    response = client.post("/api/v1/queues/default/resume", {"reason": "done"}, format="json")
    assert response.status_code == 200

    # then the worker runs it to success
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_finished:
            break
        time.sleep(0.2)
    assert run.status == RunStatus.SUCCEEDED, worker_process.log_text()
