"""Bad input gets a 4xx with a message on the field, never a 500."""

import pytest
from django.conf import settings

from jobs.api.parsers import MAX_BODY_BYTES
from jobs.models import JobRun, RunStatus
from tests.api.helpers import finished_run, token_client

pytestmark = pytest.mark.django_db

TRIGGER_URL = "/api/v1/jobs/release_escrows/trigger"
NOT_ISO = "Not an ISO-8601 time; use e.g. 2026-03-01T12:00:00Z."
DATE_ONLY = "Not an ISO-8601 time; a date needs a time too, e.g. 2026-03-01T00:00:00Z."
WINDOW = "Must be within 3653 days of now."


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
    ("since", "message"),
    [
        ("2026-03-01", DATE_ONLY),
        ("20260301", DATE_ONLY),
        ("1900-01-01T00:00:00Z", WINDOW),
        ("9999-12-31T23:59:59Z", WINDOW),
    ],
)
def test_since_is_a_time_within_the_window_as_its_message_says(api, since, message):
    response = api.get("/api/v1/runs/", {"since": since})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"since": [message]}


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
            {"reason": "x" * 501},
            {"reason": ["Ensure this field has no more than 500 characters."]},
        ),
        ({"reason": " \t\n"}, {"reason": ["This field may not be blank."]}),
        ({"reason": "a\x00b"}, {"reason": ["Null characters are not allowed."]}),
        ({"reason": "r", "as_of": "2026-03-01"}, {"as_of": [DATE_ONLY]}),
        ({"reason": "r", "as_of": "9999-12-31T00:00:00Z", "dry_run": True}, {"as_of": [WINDOW]}),
        ({"reason": "r", "as_of": "1900-01-01T00:00:00Z"}, {"as_of": [WINDOW]}),
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


WRITES = [
    TRIGGER_URL,
    "/api/v1/jobs/release_escrows/pause",
    "/api/v1/jobs/release_escrows/resume",
    "/api/v1/runs/{run}/retry",
]


@pytest.fixture
def failed_run():
    return finished_run(status=RunStatus.FAILED, error="boom")


@pytest.mark.parametrize("path", WRITES)
def test_json_nested_a_thousand_levels_deep_is_a_400_not_a_recursion_error(api, path, failed_run):
    body = '{"reason": ' + "[" * 1000 + "]" * 1000 + "}"

    response = api.post(path.format(run=failed_run.pk), body, content_type="application/json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "too_deep"
    assert error["message"] == "JSON nested deeper than 8 levels is refused."


def test_brackets_inside_strings_do_not_count_as_nesting(api, broker):
    reason = '[[[[[[[[[[{{{{{{{{{{ "quoted" ]]]'
    response = api.post(TRIGGER_URL, {"reason": reason}, format="json")
    assert response.status_code == 202
    assert response.json()["data"]["reason"] == reason


@pytest.mark.parametrize("size", [MAX_BODY_BYTES + 1, settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1])
@pytest.mark.parametrize("path", WRITES)
def test_an_oversized_body_is_a_400_in_the_error_envelope(api, path, size, failed_run):
    body = '{"reason": "' + "x" * size + '"}'

    response = api.post(path.format(run=failed_run.pk), body, content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "success": False,
        "error": {
            "code": "too_large",
            "message": f"The body is too large: the API takes at most {MAX_BODY_BYTES} bytes.",
            "fields": {},
        },
    }
    assert not JobRun.objects.exclude(pk=failed_run.pk).exists()


def test_a_bug_is_a_500_in_the_error_envelope_and_logged_with_its_traceback(
    operator, monkeypatch, caplog
):
    def broken():
        raise RuntimeError("a bug")

    monkeypatch.setattr("jobs.api.views.jobs.job_overviews", broken)
    client = token_client(operator)
    client.raise_request_exception = False

    response = client.get("/api/v1/jobs/")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json()["success"] is False
    assert response.json()["error"]["code"] == "server_error"
    assert "a bug" not in response.content.decode()
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert record.getMessage() == "Internal Server Error: /api/v1/jobs/"
    assert record.exc_info[1].args == ("a bug",)
