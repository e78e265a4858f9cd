"""Bad input gets a 4xx with a message on the field, never a 500."""

import pytest

from jobs.models import JobRun

pytestmark = pytest.mark.django_db

TRIGGER_URL = "/api/v1/jobs/release_escrows/trigger"
NOT_ISO = "Not an ISO-8601 time; use e.g. 2026-03-01T12:00:00Z."


@pytest.mark.parametrize(
    ("limit", "message"),
    [
        ("0", "Ensure this value is greater than or equal to 1."),
        ("-1", "Ensure this value is greater than or equal to 1."),
        ("101", "Ensure this value is less than or equal to 100."),
        ("abc", "A valid integer is required."),
        ("1.5", "A valid integer is required."),
        ("1.0", "A valid integer is required."),
        ("", "A valid integer is required."),
    ],
)
def test_an_invalid_limit_is_a_400_on_the_field(api, limit, message):
    response = api.get("/api/v1/runs/", {"limit": limit})
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "invalid"
    assert body["error"]["fields"] == {"limit": [message]}
    assert body["error"]["message"] == f"Invalid input. limit: {message}"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-13-01T00:00:00Z"}, "since"),
        ({"since": "2026-02-30"}, "since"),
        ({"status": "exploded"}, "status"),
        ({"trigger": "cron"}, "trigger"),
        ({"job": "no_such_job"}, "job"),
        ({"job": "bad\x00name"}, "job"),
        ({"page": "2"}, "page"),
    ],
)
def test_invalid_history_filters_are_a_400_on_the_field(api, query, field):
    response = api.get("/api/v1/runs/", query)
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"reason": ["This field is required."]}),
        ({"reason": ""}, {"reason": ["This field may not be blank."]}),
        ({"reason": 5}, {"reason": ["Not a valid string."]}),
        ({"reason": "r", "dry_run": "yes"}, {"dry_run": ["Must be a valid boolean."]}),
        ({"reason": "r", "dry_run": 1}, {"dry_run": ["Must be a valid boolean."]}),
        ({"reason": "r", "dry_run": None}, {"dry_run": ["This field may not be null."]}),
        ({"reason": "r", "as_of": "tomorrow"}, {"as_of": [NOT_ISO]}),
        ({"reason": "r", "as_of": 1767225600}, {"as_of": [NOT_ISO]}),
        ({"reason": "r", "as_of": "2026-02-30T00:00:00Z"}, {"as_of": [NOT_ISO]}),
        ({"reason": "r", "dryrun": True}, {"dryrun": ["Unknown field."]}),
        (
            {"reason": "x" * 2001},
            {"reason": ["Ensure this field has no more than 2000 characters."]},
        ),
        ({"reason": "a\x00b"}, {"reason": ["Null characters are not allowed."]}),
    ],
)
def test_an_invalid_trigger_body_is_a_400_on_the_field(api, body, fields):
    response = api.post(TRIGGER_URL, body, format="json")
    assert response.status_code == 400
    errors = response.json()["error"]["fields"]
    assert list(errors) == list(fields)
    assert errors == fields
    assert not JobRun.objects.exists()


def test_a_body_that_is_not_an_object_is_a_400(api):
    response = api.post(TRIGGER_URL, ["reason"], format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "non_field_errors": ["Invalid data. Expected a dictionary, but got list."]
    }


def test_malformed_json_is_a_400(api):
    response = api.post(TRIGGER_URL, '{"reason": "r",', content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "parse_error"
    assert "JSON parse error" in error["message"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_a_body_that_is_not_json_is_a_415(api, content_type):
    response = api.post(TRIGGER_URL, "reason=r", content_type=content_type)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", TRIGGER_URL),
        ("put", "/api/v1/jobs/release_escrows/pause"),
        ("delete", "/api/v1/jobs/"),
        ("post", "/api/v1/jobs/status"),
        ("patch", "/api/v1/runs/"),
        ("get", "/api/v1/queues/default/requeue-dead"),
    ],
)
def test_a_wrong_method_is_a_405(api, method, path):
    response = getattr(api, method)(path)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("key", ["has space", "x" * 256, "tab\tkey"])
def test_an_invalid_idempotency_key_is_a_400(api, key):
    response = api.post(TRIGGER_URL, {"reason": "r"}, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["Idempotency-Key"]


def test_an_unknown_job_wins_over_a_bad_body(api):
    assert api.post("/api/v1/jobs/nope/trigger", {}, format="json").status_code == 404
