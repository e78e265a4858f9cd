"""`GET /api/v1/runs/{id}/log`: each attempt's own lines, or one attempt's; an attempt the run
does not have is a 404, a bad number a 400 naming `attempt`."""

import pytest

from jobs.models import JobRunAttempt
from tests.api.helpers import finished_run

pytestmark = pytest.mark.django_db


def _line(text: str, level: str = "INFO") -> dict:
    return {"at": "2026-03-02T12:00:00+00:00", "level": level, "line": text}


@pytest.fixture
def run_with_two_attempts():
    run = finished_run("release_escrows")
    first = run.attempts.get()
    JobRunAttempt.objects.filter(pk=first.pk).update(
        log=[_line("Running job: release_escrows"), _line("boom", "ERROR")]
    )
    JobRunAttempt.objects.create(
        run=run,
        number=2,
        status="succeeded",
        started_at=first.finished_at,
        finished_at=first.finished_at,
        log=[_line("Running job: release_escrows"), _line("release_escrows summary:")],
    )
    run.attempt_count = 2
    run.save(update_fields=["attempt_count"])
    return run


def test_the_log_lists_every_attempts_lines_in_order(api, run_with_two_attempts):
    response = api.get(f"/api/v1/runs/{run_with_two_attempts.pk}/log")

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["run"] == run_with_two_attempts.pk
    assert [attempt["number"] for attempt in data["attempts"]] == [1, 2]
    first, second = data["attempts"]
    assert [(line["level"], line["line"]) for line in first["lines"]] == [
        ("INFO", "Running job: release_escrows"),
        ("ERROR", "boom"),
    ]
    assert second["lines"][-1]["line"] == "release_escrows summary:"


def test_one_attempts_lines(api, run_with_two_attempts):
    response = api.get(f"/api/v1/runs/{run_with_two_attempts.pk}/log", {"attempt": 2})

    assert response.status_code == 200
    (attempt,) = response.json()["data"]["attempts"]
    assert attempt["number"] == 2


def test_an_attempt_the_run_does_not_have_is_a_404_naming_it(api, run_with_two_attempts):
    response = api.get(f"/api/v1/runs/{run_with_two_attempts.pk}/log", {"attempt": 3})

    assert response.status_code == 404
    assert "no attempt 3" in response.json()["error"]["message"]


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "99999"])
def test_a_bad_attempt_number_is_a_400_naming_it(api, run_with_two_attempts, value):
    response = api.get(f"/api/v1/runs/{run_with_two_attempts.pk}/log", {"attempt": value})

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["attempt"]


def test_an_unknown_run_is_a_404_and_strangers_are_refused(api, client):
    assert api.get("/api/v1/runs/987654/log").status_code == 404
    assert client.get("/api/v1/runs/987654/log").status_code == 401
