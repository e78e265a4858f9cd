"""POST runs/{id}/cancel, the runs' cancel fields, and urgent triggers through the API."""

import time

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.actors import actor_for
from jobs.exceptions import CANCEL_PERMISSION, TRIGGER_PERMISSION
from jobs.models import ControlAction, JobRun, RunStatus, Trigger
from jobs.queues import queue_stats
from jobs.services import job_run_request
from tests.api.helpers import finished_run, token_client, user_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued_run():
    return job_run_request(enqueue=False, job="expire_matches", trigger=Trigger.CLI)


@pytest.fixture
def canceller(db):
    user = user_with(CANCEL_PERMISSION)
    client = token_client(user)
    client.user = user
    return client


def cancel(client, run_id, body=None):
    return client.post(
        f"/api/v1/runs/{run_id}/cancel",
        {"reason": "wrong params"} if body is None else body,
        format="json",
    )


def untouched(run: JobRun) -> bool:
    """The run is as it was: same status, nobody asked it to stop, nothing audited."""
    fresh = JobRun.objects.get(pk=run.pk)
    return (
        fresh.status == run.status
        and fresh.cancel_requested_at is None
        and not ControlAction.objects.exists()
    )


# --- Who may ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client", "status"),
    [
        (lambda: APIClient(), 401),
        (lambda: token_client(user_with(CANCEL_PERMISSION, staff=False)), 403),
        (lambda: token_client(user_with(TRIGGER_PERMISSION, "jobs.retry_jobrun")), 403),
        (lambda: token_client(user_with(CANCEL_PERMISSION)), 200),
        (lambda: token_client(user_with(superuser=True)), 200),
    ],
    ids=["anonymous", "not staff", "staff without it", "staff with it", "superuser"],
)
def test_cancelling_answers_by_who_asks(client, status, queued_run):
    response = cancel(client(), queued_run.pk)

    assert response.status_code == status
    if status == 403:
        assert untouched(queued_run)


# --- Cancelling ---------------------------------------------------------------------------------


def test_a_queued_run_is_cancelled_at_once_with_who_and_why(canceller, queued_run):
    # when an operator cancels a queued run
    response = cancel(canceller, queued_run.pk)

    # then it is cancelled at once, and its detail says who asked and why
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == f"Run #{queued_run.pk} cancelled"
    data = body["data"]
    assert data["id"] == queued_run.pk
    assert data["status"] == "cancelled"
    assert data["status_reason"] == f"cancelled by {canceller.user.username}: wrong params"
    assert data["cancel_requested_by"] == canceller.user.username
    assert data["cancel_reason"] == "wrong params"
    assert data["cancel_requested_at"] is not None
    assert data["attempts"] == []
    # and the audit has it
    entry = ControlAction.objects.get()
    assert (entry.action, entry.target_type) == ("run_cancelled", "run")
    assert entry.target == f"#{queued_run.pk} expire_matches"
    assert (entry.before, entry.after["status"]) == ({"status": "queued"}, "cancelled")


def test_a_running_run_is_asked_to_stop_at_its_next_batch_boundary(canceller, queued_run):
    # given a run a worker is executing
    JobRun.objects.filter(pk=queued_run.pk).update(
        status=RunStatus.RUNNING, started_at=timezone.now()
    )

    # when an operator cancels it
    response = cancel(canceller, queued_run.pk)

    # then it keeps running, marked to stop
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == (
        f"Run #{queued_run.pk} asked to stop: it ends cancelled at its next batch boundary"
    )
    assert body["data"]["status"] == "running"
    assert body["data"]["cancel_requested_by"] == canceller.user.username

    # and cancelling it again changes nothing more
    again = cancel(canceller, queued_run.pk, {"reason": "again"})
    assert again.status_code == 200
    assert again.json()["data"]["cancel_reason"] == "wrong params"
    assert ControlAction.objects.count() == 1


def test_a_fanned_out_run_cancels_its_shards_and_ends_cancelled(
    canceller, django_capture_on_commit_callbacks
):
    # given a run waiting on two queued shards
    parent = JobRun.objects.create(
        job="expire_matches",
        trigger=Trigger.CLI,
        as_of=timezone.now(),
        status=RunStatus.WAITING,
        started_at=timezone.now(),
    )
    shards = [
        JobRun.objects.create(
            job="expire_matches", trigger=Trigger.CLI, as_of=timezone.now(), parent=parent
        )
        for _ in range(2)
    ]

    # when an operator cancels it
    with django_capture_on_commit_callbacks(execute=True):
        response = cancel(canceller, parent.pk)

    # then its shards are cancelled and so, once they are, is it
    assert response.status_code == 200
    for shard in shards:
        shard.refresh_from_db()
        assert shard.status == RunStatus.CANCELLED
    parent.refresh_from_db()
    assert parent.status == RunStatus.CANCELLED


@pytest.mark.parametrize(
    "status",
    [
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.PARTIAL,
        RunStatus.SKIPPED,
        RunStatus.CANCELLED,
    ],
)
def test_a_finished_run_cannot_be_cancelled(canceller, status):
    run = finished_run(status=status)

    response = cancel(canceller, run.pk)

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert f"already {status}" in error["message"]
    assert untouched(run)


@pytest.mark.parametrize("run_id", [999_999, 99_999_999_999_999_999_999])
def test_an_unknown_run_is_a_404(canceller, run_id):
    response = cancel(canceller, run_id)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not ControlAction.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reason"),
        ({"reason": ""}, "reason"),
        ({"reason": "x" * 501}, "reason"),
        ({"reason": ["r"]}, "reason"),
        ({"reason": "r", "force": True}, "force"),
    ],
)
def test_a_bad_cancel_body_is_a_400_on_the_field_and_the_run_stays_queued(
    canceller, queued_run, body, field
):
    response = cancel(canceller, queued_run.pk, body)

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert untouched(queued_run)


def test_a_malformed_cancel_body_is_a_400_and_the_run_stays_queued(canceller, queued_run):
    response = canceller.post(
        f"/api/v1/runs/{queued_run.pk}/cancel", "{reason", content_type="application/json"
    )

    assert response.status_code == 400
    assert untouched(queued_run)


def test_the_run_list_shows_the_cancel_fields_and_urgency(api, canceller, queued_run):
    cancel(canceller, queued_run.pk)

    [run] = api.get("/api/v1/runs/").json()["data"]["executions"]

    assert run["urgent"] is False
    assert run["cancel_reason"] == "wrong params"
    assert run["cancel_requested_by"] == canceller.user.username


# --- Urgent triggers ----------------------------------------------------------------------------


def test_an_urgent_trigger_goes_to_the_urgent_lane(api, broker, django_capture_on_commit_callbacks):
    # when an operator triggers a run marked urgent
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/jobs/expire_matches/trigger",
            {"reason": "now please", "urgent": True},
            format="json",
        )

    # then the run is urgent and its message waits on the queue's urgent lane
    assert response.status_code == 202
    assert response.json()["data"]["urgent"] is True
    assert JobRun.objects.get().urgent is True
    waiting = {stats.name: stats.waiting for stats in queue_stats()}
    assert (waiting["default-urgent"], waiting["default"]) == (1, 0)


@pytest.mark.parametrize("urgent", ["yes", 1, None, "true"])
def test_urgent_must_be_a_json_boolean(api, urgent):
    response = api.post(
        "/api/v1/jobs/expire_matches/trigger",
        {"reason": "r", "urgent": urgent},
        format="json",
    )

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["urgent"]
    assert not JobRun.objects.exists()


# --- Through a real worker ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_cancelled_runs_message_is_acknowledged_without_running(worker_process):
    # given a queued run, cancelled through the API before its message is delivered
    run = job_run_request(enqueue=False, job="expire_matches", trigger=Trigger.CLI)
    response = cancel(token_client(user_with(CANCEL_PERMISSION)), run.pk)
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "cancelled"

    # when its message reaches the worker
    actor_for("expire_matches").send(run.pk)

    # then the worker acknowledges it and the run never starts
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        default = next(stats for stats in queue_stats() if stats.name == "default")
        if (default.waiting, default.in_flight, default.delayed) == (0, 0, 0):
            break
        time.sleep(0.2)
    assert (default.waiting, default.in_flight, default.delayed) == (0, 0, 0)
    assert default.dead_lettered == 0
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED, worker_process.log_text()
    assert run.attempt_count == 0
    assert not run.attempts.exists()
    assert run.started_at is None
