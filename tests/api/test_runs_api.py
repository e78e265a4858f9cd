"""GET runs/, runs/{id}/ and POST runs/{id}/retry."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs.models import JobRun, RunStatus, Trigger
from tests.api.helpers import RETRY, finished_run, token_client, user_with

pytestmark = pytest.mark.django_db


def ids(response) -> list[int]:
    return [run["id"] for run in response.json()["data"]["executions"]]


def test_history_is_newest_first_and_limited_to_20_by_default(api):
    runs = [finished_run() for _ in range(25)]

    response = api.get("/api/v1/runs/")

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["count"] == 20
    assert ids(response) == [run.pk for run in reversed(runs)][:20]


def test_history_limit_goes_up_to_100(api):
    JobRun.objects.bulk_create(
        JobRun(job="expire_matches", trigger=Trigger.CLI, as_of=timezone.now()) for _ in range(120)
    )

    assert api.get("/api/v1/runs/?limit=100").json()["data"]["count"] == 100
    assert api.get("/api/v1/runs/?limit=1").json()["data"]["count"] == 1


def test_history_filters_by_job_status_trigger_and_since(api):
    # given runs that differ in one property each
    match = finished_run("release_escrows", status=RunStatus.FAILED, trigger=Trigger.API)
    finished_run("expire_matches", status=RunStatus.FAILED, trigger=Trigger.API)
    finished_run("release_escrows", status=RunStatus.SUCCEEDED, trigger=Trigger.API)
    finished_run("release_escrows", status=RunStatus.FAILED, trigger=Trigger.SCHEDULE)
    old = finished_run("release_escrows", status=RunStatus.FAILED, trigger=Trigger.API)
    JobRun.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    since = (timezone.now() - timedelta(days=1)).isoformat()

    # when the history is filtered on all four
    response = api.get(
        "/api/v1/runs/",
        {"job": "release_escrows", "status": "failed", "trigger": "api", "since": since},
    )

    # then only the run that matches all of them is listed
    assert response.status_code == 200
    assert ids(response) == [match.pk]


def test_run_detail_has_attempts_summary_and_error(api):
    run = finished_run(
        status=RunStatus.FAILED,
        error="ValueError: boom",
        traceback="Traceback ...\nValueError: boom",
        summary={"matches_expired": 0},
    )

    response = api.get(f"/api/v1/runs/{run.pk}/")

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["id"] == run.pk
    assert data["status"] == "failed"
    assert data["error"] == "ValueError: boom"
    assert data["traceback"].endswith("ValueError: boom")
    assert data["summary"] == {"matches_expired": 0}
    assert [attempt["number"] for attempt in data["attempts"]] == [1]
    assert data["attempts"][0]["status"] == "failed"
    assert data["attempts"][0]["error"] == "ValueError: boom"


@pytest.mark.parametrize("path", ["/api/v1/runs/999999/", "/api/v1/runs/99999999999999999999/"])
def test_an_unknown_run_is_a_404(api, path):
    response = api.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_path_that_matches_no_endpoint_is_a_json_404(api):
    response = api.get("/api/v1/runs/abc/")
    assert response.status_code == 404
    assert response.json()["success"] is False


def test_retrying_a_failed_run_makes_a_new_run_linked_to_it(
    api, operator, broker, django_capture_on_commit_callbacks
):
    failed = finished_run("expire_matches", status=RunStatus.FAILED, error="boom")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            f"/api/v1/runs/{failed.pk}/retry", {"reason": "database is back"}, format="json"
        )

    assert response.status_code == 202
    body = response.json()
    retry = JobRun.objects.get(pk=body["data"]["id"])
    assert body["message"] == f"Run #{failed.pk} retried as run #{retry.pk}"
    assert body["data"]["retry_of"] == failed.pk
    assert retry.retry_of == failed
    assert retry.trigger == Trigger.RETRY
    assert (retry.requested_by, retry.reason) == (operator.username, "database is back")
    assert retry.message_id
    failed.refresh_from_db()
    assert failed.status == RunStatus.FAILED


@pytest.mark.parametrize("status", [RunStatus.SUCCEEDED, RunStatus.SKIPPED, RunStatus.QUEUED])
def test_only_failed_runs_are_retried(api, status):
    run = finished_run(status=status)

    response = api.post(f"/api/v1/runs/{run.pk}/retry", {"reason": "again"}, format="json")

    assert response.status_code == 409
    assert "only failed runs are retried" in response.json()["error"]["message"]
    assert not JobRun.objects.filter(retry_of=run).exists()


def test_retrying_an_unknown_run_is_a_404(api):
    response = api.post("/api/v1/runs/424242/retry", {"reason": "again"}, format="json")
    assert response.status_code == 404


def test_retrying_again_while_a_retry_is_in_flight_answers_with_that_retry(api, broker):
    failed = finished_run("expire_matches", status=RunStatus.FAILED, error="boom")
    url = f"/api/v1/runs/{failed.pk}/retry"

    first = api.post(url, {"reason": "database is back"}, format="json")
    again = api.post(url, {"reason": "still down?"}, format="json")

    assert first.status_code == again.status_code == 202
    retry_id = first.json()["data"]["id"]
    assert again.json()["data"]["id"] == retry_id
    message = f"Run #{failed.pk} is already being retried as run #{retry_id}"
    assert again.json()["message"] == message
    assert JobRun.objects.filter(retry_of=failed).count() == 1


def test_a_failed_retry_may_be_retried_again(api, broker):
    failed = finished_run("expire_matches", status=RunStatus.FAILED, error="boom")
    url = f"/api/v1/runs/{failed.pk}/retry"
    first = api.post(url, {"reason": "database is back"}, format="json").json()["data"]["id"]
    JobRun.objects.filter(pk=first).update(status=RunStatus.FAILED, finished_at=timezone.now())

    second = api.post(url, {"reason": "now it is"}, format="json").json()["data"]["id"]

    assert second != first
    assert JobRun.objects.filter(retry_of=failed).count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_of_one_failed_run_make_one_retry(broker):
    # given a failed run and five operators' clients, each ready to retry it at once
    failed = finished_run("expire_matches", status=RunStatus.FAILED, error="boom")
    url = f"/api/v1/runs/{failed.pk}/retry"
    clients = [token_client(user_with(RETRY)) for _ in range(5)]
    start = threading.Barrier(len(clients))
    answers = []

    def retry(client):
        try:
            start.wait()
            response = client.post(url, {"reason": "r"}, format="json")
            answers.append((response.status_code, response.json()["data"]["id"]))
        finally:
            connection.close()

    # when they all do
    threads = [threading.Thread(target=retry, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then one retry is recorded, and every answer is that retry
    (retry_run,) = JobRun.objects.filter(retry_of=failed)
    assert answers == [(202, retry_run.pk)] * len(clients)
