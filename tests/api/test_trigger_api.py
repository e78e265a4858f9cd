"""POST jobs/{name}/trigger: the run record, the message on the real broker, idempotency."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import JobRun, RunStatus, Trigger
from jobs.queues import queue_stats
from ledger.models import Escrow
from ledger.statuses import EscrowStatus
from tests.api.helpers import token_client, user_with
from tests.factories import HOLD, donation_at
from tests.scheduling.helpers import registered_job


def waiting(queue: str) -> int:
    return next(stats.waiting for stats in queue_stats() if stats.name == queue)


@pytest.mark.django_db
def test_trigger_records_the_run_and_sends_its_message(
    api, operator, broker, django_capture_on_commit_callbacks
):
    # when an operator triggers a dry run for a given time
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/jobs/release_escrows/trigger",
            {"dry_run": True, "reason": "check the backlog", "as_of": "2026-03-01T12:00:00Z"},
            format="json",
        )

    # then a 202 carries the queued run, which records who asked, why and how
    assert response.status_code == 202
    body = response.json()
    assert body["success"] is True
    assert body["message"].startswith("Job 'release_escrows' triggered: dry run #")
    run = JobRun.objects.get(pk=body["data"]["id"])
    assert run.status == RunStatus.QUEUED
    assert run.trigger == Trigger.API
    assert (run.requested_by, run.reason, run.dry_run) == (
        operator.username,
        "check the backlog",
        True,
    )
    assert run.as_of.isoformat() == "2026-03-01T12:00:00+00:00"
    assert body["data"]["as_of"] == "2026-03-01T12:00:00Z"
    # and its message waits on the job's queue in Redis
    assert run.message_id
    assert waiting("money") == 1


@pytest.mark.django_db
def test_the_same_idempotency_key_returns_the_same_run(
    api, broker, django_capture_on_commit_callbacks
):
    # given a run triggered with a key
    request = {"reason": "nightly catch-up", "dry_run": False}
    headers = {"HTTP_IDEMPOTENCY_KEY": "catch-up-2026-03-01"}
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post("/api/v1/jobs/expire_matches/trigger", request, format="json", **headers)

    # when the client repeats the same request with the same key
    with django_capture_on_commit_callbacks(execute=True):
        again = api.post("/api/v1/jobs/expire_matches/trigger", request, format="json", **headers)

    # then it gets the same run back, marked as a replay, and nothing new is recorded or sent
    assert first.status_code == again.status_code == 202
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert JobRun.objects.count() == 1
    assert waiting("default") == 1


@pytest.mark.django_db
def test_the_same_idempotency_key_with_a_different_request_is_a_conflict(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "key-1"}
    first = api.post(
        "/api/v1/jobs/expire_matches/trigger", {"reason": "a"}, format="json", **headers
    )
    other_body = api.post(
        "/api/v1/jobs/expire_matches/trigger", {"reason": "b"}, format="json", **headers
    )
    other_job = api.post(
        "/api/v1/jobs/cycle_reminders/trigger", {"reason": "a"}, format="json", **headers
    )

    assert first.status_code == 202
    for response in (other_body, other_job):
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "conflict"
        assert "key-1" in response.json()["error"]["message"]
    assert JobRun.objects.count() == 1


@pytest.mark.django_db
def test_the_same_time_written_with_another_offset_is_the_same_request(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "offsets"}
    utc = {"reason": "r", "as_of": "2026-03-01T12:00:00Z"}
    lagos = {"reason": "r", "as_of": "2026-03-01T13:00:00+01:00"}

    first = api.post("/api/v1/jobs/expire_matches/trigger", utc, format="json", **headers)
    again = api.post("/api/v1/jobs/expire_matches/trigger", lagos, format="json", **headers)

    assert again.status_code == 202
    assert again.json()["data"]["id"] == first.json()["data"]["id"]


@pytest.mark.django_db
def test_different_idempotency_keys_make_different_runs(api):
    ids = {
        api.post(
            "/api/v1/jobs/expire_matches/trigger",
            {"reason": "same"},
            format="json",
            HTTP_IDEMPOTENCY_KEY=key,
        ).json()["data"]["id"]
        for key in ("key-a", "key-b")
    }
    assert len(ids) == 2


@pytest.mark.django_db
def test_another_users_idempotency_key_is_another_request(api, operator):
    # given a run triggered by the operator with a key
    request = {"reason": "nightly catch-up"}
    headers = {"HTTP_IDEMPOTENCY_KEY": "catch-up-2026-03-01"}
    first = api.post("/api/v1/jobs/expire_matches/trigger", request, format="json", **headers)

    # when another user sends the same request with the same key
    other = token_client(user_with("jobs.trigger_jobrun"))
    again = other.post("/api/v1/jobs/expire_matches/trigger", request, format="json", **headers)

    # then that user gets a run of their own, not the operator's
    assert first.status_code == again.status_code == 202
    assert again.json()["data"]["id"] != first.json()["data"]["id"]
    assert "Idempotent-Replayed" not in again
    assert again.json()["data"]["requested_by"] != operator.username
    assert JobRun.objects.count() == 2


@pytest.mark.django_db
def test_a_run_may_not_handle_work_due_in_the_future_but_a_dry_run_may(api):
    tomorrow = (timezone.now() + timedelta(days=1)).isoformat()

    real = api.post(
        "/api/v1/jobs/release_escrows/trigger",
        {"reason": "early", "as_of": tomorrow},
        format="json",
    )
    dry = api.post(
        "/api/v1/jobs/release_escrows/trigger",
        {"reason": "preview", "as_of": tomorrow, "dry_run": True},
        format="json",
    )

    assert real.status_code == 400
    assert real.json()["error"]["fields"] == {
        "as_of": ["Only a dry run may handle work due in the future."]
    }
    assert dry.status_code == 202


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_run_triggered_through_the_api_succeeds_on_a_real_worker(worker_process):
    # given two escrows past their hold and an operator with a token
    now = timezone.now()
    for _ in range(2):
        donation_at(at=now - HOLD - timedelta(minutes=1))
    client = token_client(user_with("jobs.trigger_jobrun"))

    # when the operator triggers release_escrows through the API
    response = client.post(
        "/api/v1/jobs/release_escrows/trigger", {"reason": "end-to-end"}, format="json"
    )
    assert response.status_code == 202
    run_id = response.json()["data"]["id"]

    # then the worker runs it to success and the escrows are released
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/runs/{run_id}/").json()["data"]
        if run["status"] not in ("queued", "running"):
            break
        time.sleep(0.2)
    assert run["status"] == "succeeded", worker_process.log_text()
    assert run["summary"]["escrows_released"] == 2
    assert run["attempts"][0]["worker"]
    assert not Escrow.objects.filter(status=EscrowStatus.HOLDING).exists()


@pytest.mark.django_db
def test_a_trigger_with_params_records_them_as_the_job_takes_them(api, targets_job):
    # when an operator triggers a targeted run, its ids repeated and out of order
    response = api.post(
        f"/api/v1/jobs/{targets_job}/trigger",
        {"reason": "urgent release", "params": {"ids": [9, 4, 9]}},
        format="json",
    )

    # then the run holds the validated params, the job's defaults included, and shows them
    assert response.status_code == 202
    run = JobRun.objects.get(pk=response.json()["data"]["id"])
    assert run.params == {"ids": [4, 9], "game": "snake"}
    assert response.json()["data"]["params"] == run.params
    assert response.json()["data"]["schedule"] is None
    # and, the job's rows being safe to claim at once, it takes the lock of just its params
    assert run.lock_scope


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"ids": "4,9"}, ["params.ids"]),
        ({"ids": [0]}, ["params.ids"]),
        ({"ids": []}, ["params.ids"]),
        ({"ids": list(range(1, 1_002))}, ["params.ids"]),
        ({"ids": [4], "game": "chess"}, ["params.game"]),
        ({"ids": [0], "game": "chess"}, ["params.game", "params.ids"]),
        ({"escrow": 4}, ["params.escrow"]),
        ([4, 9], ["params"]),
        ("ids=4", ["params"]),
        (None, ["params"]),
    ],
)
def test_bad_params_are_a_400_on_the_field_and_record_nothing(api, targets_job, params, fields):
    response = api.post(
        f"/api/v1/jobs/{targets_job}/trigger", {"reason": "r", "params": params}, format="json"
    )

    assert response.status_code == 400
    assert sorted(response.json()["error"]["fields"]) == sorted(fields)
    assert not JobRun.objects.exists()


@pytest.mark.django_db
def test_params_for_a_job_that_takes_none_are_a_400_naming_them(api):
    with registered_job("api_plain"):
        response = api.post(
            "/api/v1/jobs/api_plain/trigger",
            {"reason": "r", "params": {"match_ids": [1]}},
            format="json",
        )

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "params.match_ids": ["api_plain has no parameter 'match_ids'; it accepts: none"]
    }
    assert not JobRun.objects.exists()


@pytest.mark.django_db
def test_params_are_part_of_the_idempotency_keys_request(api, targets_job):
    # given a targeted run triggered with a key
    url = f"/api/v1/jobs/{targets_job}/trigger"
    headers = {"HTTP_IDEMPOTENCY_KEY": "urgent-4-9"}
    first = api.post(url, {"reason": "r", "params": {"ids": [4, 9]}}, format="json", **headers)

    # when the same targets are sent again in another order, and then other targets
    same = api.post(url, {"reason": "r", "params": {"ids": [9, 4]}}, format="json", **headers)
    other = api.post(url, {"reason": "r", "params": {"ids": [4]}}, format="json", **headers)

    # then the first repeat is the same request, the second a conflict
    assert (first.status_code, same.status_code, other.status_code) == (202, 202, 409)
    assert same.json()["data"]["id"] == first.json()["data"]["id"]
    assert same["Idempotent-Replayed"] == "true"
    assert JobRun.objects.count() == 1
