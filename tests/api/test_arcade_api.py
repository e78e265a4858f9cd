"""The arcade seed's paths: GET jobs/history?limit=N and POST jobs/trigger/{name}, answering as
a client written against the seed expects."""

import pytest
from rest_framework.test import APIClient

from jobs.models import JobRun, RunStatus, Trigger
from tests.api.helpers import finished_run, token_client, user_with

pytestmark = pytest.mark.django_db

HISTORY = "/api/v1/jobs/history"


def trigger_path(name: str) -> str:
    return f"/api/v1/jobs/trigger/{name}"


# --- GET jobs/history ----------------------------------------------------------------------------


def test_the_history_answers_in_the_seeds_shape(api):
    # given two finished runs, one failed, a shard and a run still queued
    succeeded = finished_run("expire_matches", duration_ms=245)
    failed = finished_run("release_escrows", status=RunStatus.FAILED, error="BankDown: no")
    finished_run("release_escrows").shards.create(
        job="release_escrows", trigger=Trigger.SCHEDULE, as_of=succeeded.as_of, status="succeeded"
    )
    JobRun.objects.create(job="expire_matches", trigger=Trigger.API, as_of=succeeded.as_of)

    # when a client asks for the history
    response = api.get(HISTORY)

    # then it gets the finished top-level runs, newest first, in the seed's field names
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    assert set(data) == {"executions", "count"}
    assert data["count"] == len(data["executions"]) == 3
    newest_failed = data["executions"][1]
    assert newest_failed == {
        "id": failed.pk,
        "name": "release_escrows",
        "status": "failed",
        "dryRun": False,
        "startedAt": newest_failed["startedAt"],
        "completedAt": newest_failed["completedAt"],
        "success": False,
        "durationMs": 100,
        "error": "BankDown: no",
    }
    oldest = data["executions"][2]
    assert (oldest["id"], oldest["name"], oldest["success"], oldest["durationMs"]) == (
        succeeded.pk,
        "expire_matches",
        True,
        245,
    )
    assert oldest["startedAt"].endswith("Z") and oldest["completedAt"].endswith("Z")


def test_the_history_lists_20_by_default_and_up_to_the_limit(api):
    for _ in range(25):
        finished_run()

    default = api.get(HISTORY).json()["data"]
    three = api.get(HISTORY, {"limit": 3}).json()["data"]
    hundred = api.get(HISTORY, {"limit": 100}).json()["data"]

    assert default["count"] == len(default["executions"]) == 20
    assert three["count"] == 3
    assert [run["id"] for run in three["executions"]] == [
        run["id"] for run in default["executions"][:3]
    ]
    assert hundred["count"] == 25


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "101", "1.5", ""])
def test_a_bad_limit_is_a_400_naming_it(api, limit):
    response = api.get(HISTORY, {"limit": limit})

    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "invalid"
    assert list(body["error"]["fields"]) == ["limit"]
    assert body["error"]["fields"]["limit"][0]


def test_the_history_refuses_a_parameter_it_does_not_know(api):
    response = api.get(HISTORY, {"limt": 5})

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["limt"]


def test_the_history_is_for_staff():
    assert APIClient().get(HISTORY).status_code == 401
    assert token_client(user_with(staff=False)).get(HISTORY).status_code == 403
    assert token_client(user_with()).get(HISTORY).status_code == 200


def test_the_old_paths_still_work_next_to_the_seeds(api):
    assert api.get("/api/v1/jobs/release_escrows/").status_code == 200
    assert api.get("/api/v1/jobs/status").status_code == 200
    assert api.get("/api/v1/jobs/no_such_job/").status_code == 404


# --- POST jobs/trigger/{name} ---------------------------------------------------------------------


def test_the_seeds_trigger_path_records_exactly_one_run(
    api, operator, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            trigger_path("expire_matches"), {"reason": "from the arcade client"}, format="json"
        )

    assert response.status_code == 202
    body = response.json()
    assert body["success"] is True
    assert body["message"].startswith("Job 'expire_matches' triggered: run #")
    run = JobRun.objects.get()
    assert body["data"]["id"] == run.pk
    assert (run.job, run.trigger, run.requested_by, run.reason) == (
        "expire_matches",
        Trigger.API,
        operator.username,
        "from the arcade client",
    )
    assert run.message_id


def test_the_seeds_trigger_path_takes_a_dry_run_and_an_idempotency_key(api, broker):
    request = {"reason": "catch up", "dry_run": True}
    headers = {"HTTP_IDEMPOTENCY_KEY": "arcade-1"}

    first = api.post(trigger_path("expire_matches"), request, format="json", **headers)
    again = api.post(trigger_path("expire_matches"), request, format="json", **headers)
    # the same key on the engine's own path is the same request too
    other_path = api.post("/api/v1/jobs/expire_matches/trigger", request, format="json", **headers)

    assert first.status_code == again.status_code == other_path.status_code == 202
    assert first.json()["data"]["dry_run"] is True
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert other_path.json()["data"]["id"] == first.json()["data"]["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert JobRun.objects.count() == 1


def test_the_seeds_trigger_path_refuses_an_unknown_job_and_a_bad_body(api):
    unknown = api.post(trigger_path("no_such_job"), {"reason": "a typo"}, format="json")
    assert unknown.status_code == 404
    assert "unknown job 'no_such_job'" in unknown.json()["error"]["message"]

    no_reason = api.post(trigger_path("expire_matches"), {}, format="json")
    assert no_reason.status_code == 400
    assert list(no_reason.json()["error"]["fields"]) == ["reason"]
    assert not JobRun.objects.exists()


def test_the_seeds_trigger_path_needs_the_trigger_permission():
    body = {"reason": "try"}
    path = trigger_path("expire_matches")

    assert APIClient().post(path, body, format="json").status_code == 401
    assert token_client(user_with(staff=False)).post(path, body, format="json").status_code == 403
    assert token_client(user_with()).post(path, body, format="json").status_code == 403
    assert not JobRun.objects.exists()


def test_both_seed_paths_are_in_the_schema():
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()

    history = schema["paths"]["/api/v1/jobs/history"]["get"]
    assert history["operationId"] == "jobs_history"
    limit = next(p for p in history["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 100)
    assert limit["schema"]["default"] == 20
    assert set(history["responses"]) >= {"200", "400", "401", "403"}
    trigger = schema["paths"]["/api/v1/jobs/trigger/{name}"]["post"]
    assert trigger["operationId"] == "jobs_trigger_by_name"
    assert set(trigger["responses"]) >= {"202", "400", "401", "403", "404", "409"}
    assert {p["name"] for p in trigger["parameters"]} == {"name", "Idempotency-Key"}
