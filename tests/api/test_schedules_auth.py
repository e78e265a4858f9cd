"""Who may do what with schedules: anonymous 401, non-staff 403, and staff need each
operation's own model permission; a refused request changes nothing."""

import pytest
from rest_framework.test import APIClient

from jobs.models import Schedule, ScheduleChange
from tests.api.helpers import (
    ADD_SCHEDULE,
    CHANGE_SCHEDULE,
    DELETE_SCHEDULE,
    PAUSE_SCHEDULE,
    SCHEDULE_PERMISSIONS,
    VIEW_SCHEDULE,
    token_client,
    user_with,
)

pytestmark = pytest.mark.django_db

NEW = {"name": "reminders-tokyo", "job": "cycle_reminders", "cron": "0 9 * * *"}
# Each operation with the one permission it needs and a request that succeeds.
OPERATIONS = [
    ("get", "/api/v1/schedules/", VIEW_SCHEDULE, None, 200),
    ("get", "/api/v1/schedules/{schedule}/", VIEW_SCHEDULE, None, 200),
    ("post", "/api/v1/schedules/", ADD_SCHEDULE, NEW, 201),
    ("patch", "/api/v1/schedules/{schedule}/", CHANGE_SCHEDULE, {"cron": "5 3 * * *"}, 200),
    ("delete", "/api/v1/schedules/{schedule}/", DELETE_SCHEDULE, None, 200),
    ("post", "/api/v1/schedules/{schedule}/pause", PAUSE_SCHEDULE, {"reason": "r"}, 200),
    ("post", "/api/v1/schedules/{schedule}/resume", PAUSE_SCHEDULE, {"reason": "r"}, 200),
]


@pytest.fixture
def schedule():
    return Schedule.objects.get(name="cleanup")


def call(client, method, path, body, schedule):
    return getattr(client, method)(path.format(schedule=schedule.pk), body, format="json")


def counts() -> tuple[int, int, list]:
    return (
        Schedule.objects.count(),
        ScheduleChange.objects.count(),
        list(Schedule.objects.order_by("pk").values()),
    )


@pytest.mark.parametrize(("method", "path", "perm", "body", "ok"), OPERATIONS)
def test_anonymous_requests_are_401_and_change_nothing(method, path, perm, body, ok, schedule):
    before = counts()

    response = call(APIClient(), method, path, body, schedule)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert counts() == before


@pytest.mark.parametrize(("method", "path", "perm", "body", "ok"), OPERATIONS)
def test_users_who_are_not_staff_are_refused_even_with_the_permission(
    method, path, perm, body, ok, schedule
):
    before = counts()

    response = call(token_client(user_with(perm, staff=False)), method, path, body, schedule)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert counts() == before


@pytest.mark.parametrize(("method", "path", "perm", "body", "ok"), OPERATIONS)
def test_staff_need_the_operations_own_permission(method, path, perm, body, ok, schedule):
    # given staff holding every schedule permission but this operation's
    refused = token_client(user_with(*(set(SCHEDULE_PERMISSIONS) - {perm})))
    # and staff holding only this operation's permission
    allowed = token_client(user_with(perm))
    before = counts()

    # then the first is refused with a message naming the permission, changing nothing
    response = call(refused, method, path, body, schedule)
    assert response.status_code == 403
    assert perm in response.json()["error"]["message"]
    assert counts() == before
    # and the second succeeds
    assert call(allowed, method, path, body, schedule).status_code == ok


@pytest.mark.parametrize(("method", "path", "perm", "body", "ok"), OPERATIONS)
def test_superusers_may_do_everything(method, path, perm, body, ok, schedule):
    client = token_client(user_with(superuser=True))
    assert call(client, method, path, body, schedule).status_code == ok


def test_permissions_are_checked_before_the_schedule_is_looked_up():
    # a staff user without the permission learns nothing about which schedules exist
    client = token_client(user_with())
    assert client.get("/api/v1/schedules/424242/").status_code == 403
