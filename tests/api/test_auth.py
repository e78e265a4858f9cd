"""Who may do what: anonymous 401, non-staff 403, staff read, writes need their permission."""

import pytest
from rest_framework.test import APIClient

from jobs.models import RunStatus
from tests.api.helpers import PAUSE, REQUEUE, RETRY, TRIGGER, finished_run, token_client, user_with

pytestmark = pytest.mark.django_db

READS = [
    "/api/v1/jobs/",
    "/api/v1/jobs/release_escrows/",
    "/api/v1/jobs/status",
    "/api/v1/runs/",
    "/api/v1/runs/{run}/",
    "/api/v1/queues/",
]
# Each write with the one permission it needs and a body that succeeds.
WRITES = [
    ("/api/v1/jobs/release_escrows/trigger", TRIGGER, {"reason": "r", "dry_run": True}, 202),
    ("/api/v1/jobs/release_escrows/pause", PAUSE, {"reason": "r"}, 200),
    ("/api/v1/jobs/release_escrows/resume", PAUSE, {"reason": "r"}, 200),
    ("/api/v1/runs/{run}/retry", RETRY, {"reason": "r"}, 202),
    ("/api/v1/queues/default/requeue-dead", REQUEUE, None, 200),
]
ALL_PERMISSIONS = {TRIGGER, PAUSE, RETRY, REQUEUE}


@pytest.fixture
def failed_run():
    return finished_run(status=RunStatus.FAILED, error="boom")


def url(template: str, run) -> str:
    return template.format(run=run.pk)


def post(client, path, body):
    return client.post(path, body, format="json") if body is not None else client.post(path)


@pytest.mark.parametrize("path", READS)
def test_anonymous_reads_are_401_with_a_token_challenge(path, failed_run):
    response = APIClient().get(url(path, failed_run))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(("path", "perm", "body", "ok"), WRITES)
def test_anonymous_writes_are_401(path, perm, body, ok, failed_run):
    response = post(APIClient(), url(path, failed_run), body)
    assert response.status_code == 401


def test_a_wrong_token_is_401(failed_run):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/api/v1/jobs/").status_code == 401


@pytest.mark.parametrize("path", READS)
def test_users_who_are_not_staff_are_refused_reads(path, failed_run):
    client = token_client(user_with(*ALL_PERMISSIONS, staff=False))
    response = client.get(url(path, failed_run))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


@pytest.mark.parametrize(("path", "perm", "body", "ok"), WRITES)
def test_users_who_are_not_staff_are_refused_writes_even_with_the_permission(
    path, perm, body, ok, failed_run, broker
):
    client = token_client(user_with(perm, staff=False))
    assert post(client, url(path, failed_run), body).status_code == 403


@pytest.mark.parametrize("path", READS)
def test_staff_without_any_permission_may_read(path, failed_run, broker):
    client = token_client(user_with())
    response = client.get(url(path, failed_run))
    assert response.status_code == 200
    assert response.json()["success"] is True


@pytest.mark.parametrize(("path", "perm", "body", "ok"), WRITES)
def test_staff_need_the_writes_own_permission(path, perm, body, ok, failed_run, broker):
    # given staff holding every jobs permission except this write's
    refused = token_client(user_with(*(ALL_PERMISSIONS - {perm})))
    # and staff holding only this write's permission
    allowed = token_client(user_with(perm))

    # then the first is refused with a message naming the permission and the second succeeds
    response = post(refused, url(path, failed_run), body)
    assert response.status_code == 403
    assert perm in response.json()["error"]["message"]
    assert post(allowed, url(path, failed_run), body).status_code == ok


@pytest.mark.parametrize(("path", "perm", "body", "ok"), WRITES)
def test_superusers_may_write(path, perm, body, ok, failed_run, broker):
    client = token_client(user_with(superuser=True))
    assert post(client, url(path, failed_run), body).status_code == ok


def test_session_authentication_works_and_enforces_csrf(failed_run):
    # given a staff user logged in with a session (as the dashboard is)
    user = user_with(TRIGGER)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)

    # then reads work, and a write without the CSRF token is refused
    assert client.get("/api/v1/jobs/").status_code == 200
    response = client.post("/api/v1/jobs/release_escrows/trigger", {"reason": "r"}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]
