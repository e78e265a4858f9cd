"""Bad schedule input gets a 400 naming each field at fault, and nothing is saved or audited:
never a 500."""

import json
from urllib.parse import urlencode

import pytest

from jobs.api.parsers import MAX_BODY_BYTES
from jobs.models import Schedule, ScheduleChange
from jobs.schedules import schedule_create

pytestmark = pytest.mark.django_db

GOOD = {"name": "pools-tokyo", "job": "api_targets", "cron": "0 0 * * *", "timezone": "Asia/Tokyo"}
LONG = "x" * 2_001


@pytest.fixture
def saved():
    """What is saved and audited, to compare after a refused request."""

    def snapshot():
        return (
            list(Schedule.objects.order_by("pk").values()),
            list(ScheduleChange.objects.order_by("pk").values()),
        )

    return snapshot


@pytest.fixture
def targets_schedule(targets_job):
    return schedule_create(by="ops", name="baker-3", job=targets_job, cron="0 6 * * *")


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        # what the schedule services check
        ({"job": "no_such_job"}, ["job"]),
        ({"cron": "61 * * * *"}, ["cron"]),
        ({"cron": "* * *"}, ["cron"]),
        ({"cron": "@fortnightly"}, ["cron"]),
        ({"timezone": "Mars/Olympus_Mons"}, ["timezone"]),
        ({"timezone": "utc "}, ["timezone"]),
        ({"params": {"ids": "seven"}}, ["params.ids"]),
        ({"params": {"ids": [0]}}, ["params.ids"]),
        ({"params": {"game": "chess"}}, ["params.game"]),
        ({"params": {"baker": 7}}, ["params.baker"]),
        ({"job": "cleanup", "params": {"ids": [7]}}, ["params.ids"]),
        ({"name": "release_escrows"}, ["name"]),
        ({"name": "has space"}, ["name"]),
        ({"name": "-leading-dash"}, ["name"]),
        ({"cron": "61 * * * *", "timezone": "Nowhere"}, ["cron", "timezone"]),
        # types and bounds, checked before the services are called
        ({"params": [7]}, ["params"]),
        ({"params": "ids=7"}, ["params"]),
        ({"params": None}, ["params"]),
        ({"name": 5}, ["name"]),
        ({"name": "x" * 101}, ["name"]),
        ({"name": None}, ["name"]),
        ({"job": ["cleanup"]}, ["job"]),
        ({"cron": 5}, ["cron"]),
        ({"cron": "0 " * 51}, ["cron"]),
        ({"timezone": "x" * 65}, ["timezone"]),
        ({"timezone": "Asia/Tok\x00yo"}, ["timezone"]),
        ({"enabled": "yes"}, ["enabled"]),
        ({"enabled": 1}, ["enabled"]),
        ({"catch_up": None}, ["catch_up"]),
        ({"max_retries": -1}, ["max_retries"]),
        ({"max_retries": 21}, ["max_retries"]),
        ({"max_retries": "3"}, ["max_retries"]),
        ({"max_retries": 2.5}, ["max_retries"]),
        ({"max_retries": True}, ["max_retries"]),
        ({"min_backoff_ms": 99}, ["min_backoff_ms"]),
        ({"min_backoff_ms": 10**30}, ["min_backoff_ms"]),
        ({"notes": LONG}, ["notes"]),
        ({"notes": "a\x00b"}, ["notes"]),
        ({"reason": ""}, ["reason"]),
        ({"reason": " "}, ["reason"]),
        ({"reason": "r" * 501}, ["reason"]),
        ({"colour": "blue"}, ["colour"]),
    ],
)
def test_a_bad_new_schedule_is_a_400_on_its_fields_and_saves_nothing(
    api, targets_job, saved, changes, fields
):
    before = saved()

    response = api.post("/api/v1/schedules/", {**GOOD, **changes}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert sorted(error["fields"]) == fields
    assert all(error["fields"][field] for field in fields)
    assert saved() == before


def test_a_new_schedule_needs_a_name_a_job_and_a_cron(api, saved):
    before = saved()

    response = api.post("/api/v1/schedules/", {}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        field: ["This field is required."] for field in ("name", "job", "cron")
    }
    assert saved() == before


def test_messages_say_what_is_wrong(api, targets_job):
    response = api.post(
        "/api/v1/schedules/",
        {**GOOD, "cron": "0 25 * * *", "timezone": "Asia/Tokio", "params": {"baker": 7}},
        format="json",
    )

    fields = response.json()["error"]["fields"]
    assert fields["cron"] == ["hour 25 in '25' is outside 0-23"]
    assert "unknown time zone 'Asia/Tokio'" in fields["timezone"][0]
    assert "api_targets has no parameter 'baker'; it accepts: game, ids" in fields["params.baker"]


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"cron": "0 0 30 2 *"}, ["cron"]),
        ({"timezone": "Europe/Atlantis"}, ["timezone"]),
        ({"name": "cleanup"}, ["name"]),
        ({"job": "expire_matches", "params": {"ids": [4]}}, ["params.ids"]),
        ({"params": {"ids": []}}, ["params.ids"]),
        ({"job": "nope"}, ["job"]),
        ({"enabled": "false"}, ["enabled"]),
        ({"notes": None}, ["notes"]),
        ({"max_retries": {}}, ["max_retries"]),
        ({"schedule": 4}, ["schedule"]),
        ({"created_by": "someone else"}, ["created_by"]),
    ],
)
def test_a_bad_edit_is_a_400_on_its_fields_and_changes_nothing(
    api, targets_schedule, saved, changes, fields
):
    before = saved()

    response = api.patch(f"/api/v1/schedules/{targets_schedule.pk}/", changes, format="json")

    assert response.status_code == 400
    assert sorted(response.json()["error"]["fields"]) == fields
    assert saved() == before


def test_switching_a_schedule_to_a_job_that_refuses_its_params_is_a_400(api, targets_job, saved):
    # given a baker's schedule whose params only its job takes
    schedule = schedule_create(
        by="ops", name="baker-9", job=targets_job, cron="0 6 * * *", params={"ids": [9]}
    )
    before = saved()

    # when it is moved to a job that takes no params
    response = api.patch(f"/api/v1/schedules/{schedule.pk}/", {"job": "cleanup"}, format="json")

    # then the params are named, and the schedule keeps its job
    assert response.status_code == 400
    assert sorted(response.json()["error"]["fields"]) == ["params.game", "params.ids"]
    assert saved() == before


@pytest.mark.parametrize("reason", ["", " ", "r" * 501])
def test_removing_with_a_bad_reason_is_a_400_and_removes_nothing(api, saved, reason):
    schedule = Schedule.objects.get(name="cleanup")
    before = saved()

    response = api.delete(f"/api/v1/schedules/{schedule.pk}/?{urlencode({'reason': reason})}")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["reason"]
    assert saved() == before


def test_removing_with_a_body_is_a_400_rather_than_losing_its_reason(api, saved):
    schedule = Schedule.objects.get(name="cleanup")
    before = saved()

    response = api.delete(f"/api/v1/schedules/{schedule.pk}/", {"reason": "r"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "body": ["A removal takes no body; give the reason as ?reason=..."]
    }
    assert saved() == before


def test_removing_with_an_unknown_query_parameter_is_a_400(api, saved):
    schedule = Schedule.objects.get(name="cleanup")
    before = saved()

    response = api.delete(f"/api/v1/schedules/{schedule.pk}/?force=1")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["force"]
    assert saved() == before


@pytest.mark.parametrize("verb", ["pause", "resume"])
@pytest.mark.parametrize(
    ("body", "field"),
    [({"reason": ""}, "reason"), ({"reason": 5}, "reason"), ({"enabled": False}, "enabled")],
)
def test_a_bad_pause_or_resume_body_is_a_400(api, saved, verb, body, field):
    schedule = Schedule.objects.get(name="cleanup")
    before = saved()

    response = api.post(f"/api/v1/schedules/{schedule.pk}/{verb}", body, format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]
    assert saved() == before


def test_the_list_filter_refuses_an_unknown_job(api):
    response = api.get("/api/v1/schedules/", {"job": "nope"})

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["job"]


WRITES = [
    ("post", "/api/v1/schedules/"),
    ("patch", "/api/v1/schedules/{schedule}/"),
    ("post", "/api/v1/schedules/{schedule}/pause"),
    ("post", "/api/v1/schedules/{schedule}/resume"),
]


def write(api, method, path, body, **extra):
    schedule = Schedule.objects.get(name="cleanup")
    return getattr(api, method)(path.format(schedule=schedule.pk), body, **extra)


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_malformed_json_is_a_400(api, saved, method, path):
    before = saved()

    response = write(api, method, path, '{"name": "x",', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert saved() == before


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_a_body_that_is_not_an_object_is_a_400(api, saved, method, path):
    before = saved()

    response = write(api, method, path, ["name"], format="json")

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["non_field_errors"]
    assert saved() == before


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_a_body_that_is_not_json_is_a_415(api, saved, method, path):
    before = saved()

    response = write(api, method, path, "name=x", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 415
    assert saved() == before


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_a_huge_body_is_a_400(api, saved, method, path):
    before = saved()
    body = '{"notes": "' + "x" * MAX_BODY_BYTES + '"}'

    response = write(api, method, path, body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_large"
    assert saved() == before


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_params_nested_too_deep_are_a_400(api, saved, method, path):
    before = saved()
    body = '{"params": {"ids": ' + "[" * 20 + "]" * 20 + "}}"

    response = write(api, method, path, body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_deep"
    assert saved() == before


def test_a_body_as_large_as_the_largest_fields_allow_is_taken(api, targets_job):
    # given the longest notes and reason, written with characters JSON escapes at 12 bytes
    notes = "\U0001f370" * 2_000
    ids = list(range(10**18, 10**18 + 1_000))
    body = json.dumps({**GOOD, "notes": notes, "params": {"ids": ids}, "reason": notes[:500]})

    # when a schedule with them and a thousand large ids is added
    response = api.post("/api/v1/schedules/", body, content_type="application/json")

    # then it is saved as sent
    assert response.status_code == 201
    assert Schedule.objects.get(name="pools-tokyo").notes == notes


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/api/v1/schedules/{schedule}/"),
        ("delete", "/api/v1/schedules/"),
        ("get", "/api/v1/schedules/{schedule}/pause"),
        ("patch", "/api/v1/schedules/{schedule}/resume"),
    ],
)
def test_a_wrong_method_is_a_405(api, saved, method, path):
    before = saved()

    response = write(api, method, path, {}, format="json")

    assert response.status_code == 405
    assert saved() == before
