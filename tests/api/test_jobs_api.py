"""GET jobs/, jobs/{name}/, jobs/status and POST jobs/{name}/pause|resume."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import JobRun, JobState, RunStatus, Schedule
from jobs.registry import all_jobs
from jobs.schedules import schedule_create, schedule_pause
from jobs.scheduling import job_pause
from tests.api.helpers import finished_run

pytestmark = pytest.mark.django_db

IDS_HELP = "Just these rows; all that are due by default."


def test_the_job_list_shows_every_job_with_schedules_state_last_run_and_stats(api, settings):
    # given a job with a few finished runs and a paused job, in a non-UTC time zone
    settings.TIME_ZONE = "Africa/Lagos"
    for duration in (100, 200, 300):
        finished_run("release_escrows", duration_ms=duration)
    last = finished_run("release_escrows", status=RunStatus.FAILED, duration_ms=1000)
    job_pause(job="expire_matches", by="ops", reason="maintenance")

    # when the jobs are listed
    response = api.get("/api/v1/jobs/")

    # then every registered job is there, in catalog order, with its details
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    jobs = {job["name"]: job for job in body["data"]}
    assert list(jobs) == [spec.name for spec in all_jobs()]
    release = jobs["release_escrows"]
    (default,) = release["schedules"]
    assert (default["name"], default["cron"], default["in_words"]) == (
        "release_escrows",
        "0 * * * *",
        "every hour at :00",
    )
    assert release["time_zone"] == "Africa/Lagos"
    assert release["description"].startswith("Release escrows")
    assert release["state"]["state"] == "enabled"
    assert release["last_run"]["id"] == last.pk
    assert release["last_run"]["status"] == "failed"
    # the next 3 run times are whole hours, given in TIME_ZONE
    next_runs = [datetime.fromisoformat(moment) for moment in release["next_runs"]]
    assert len(next_runs) == 3
    assert all(moment.utcoffset() == timedelta(hours=1) for moment in next_runs)
    assert all(moment.minute == 0 and moment > timezone.now() for moment in next_runs)
    assert next_runs[1] - next_runs[0] == timedelta(hours=1)
    # 3 of 4 runs succeeded; p50 and p95 interpolate like percentile_cont
    assert release["stats"] == {
        "sample_size": 4,
        "succeeded": 3,
        "partial": 0,
        "failed": 1,
        "skipped": 0,
        "success_rate": 75.0,
        "p50_ms": 250,
        "p95_ms": 895,
        # their attempts recorded no wait (tests/jobs/test_wait_times.py has runs that did)
        "wait_p50_ms": None,
        "wait_p95_ms": None,
    }
    paused = jobs["expire_matches"]["state"]
    assert paused["state"] == "paused"
    assert (paused["changed_by"], paused["change_reason"]) == ("ops", "maintenance")
    assert jobs["cycle_reminders"]["last_run"] is None
    assert jobs["cycle_reminders"]["stats"]["success_rate"] is None


def test_skipped_runs_are_counted_but_left_out_of_the_success_rate(api):
    # given one success, one failure and two skipped ticks
    finished_run("expire_matches")
    finished_run("expire_matches", status=RunStatus.FAILED)
    finished_run("expire_matches", status=RunStatus.SKIPPED)
    finished_run("expire_matches", status=RunStatus.SKIPPED)

    # when the job is read
    stats = api.get("/api/v1/jobs/expire_matches/").json()["data"]["stats"]

    # then the rate is over the runs that did work
    assert (stats["skipped"], stats["success_rate"]) == (2, 50.0)
    assert (stats["p50_ms"], stats["p95_ms"]) == (100, 100)


def test_dry_runs_are_left_out_of_statistics_but_shown_as_the_last_run(api):
    # given a failed run followed by a slow successful dry run
    finished_run("expire_matches", status=RunStatus.FAILED, duration_ms=10)
    dry = finished_run("expire_matches", duration_ms=9_000, dry_run=True)

    # when the job and the status are read
    job = api.get("/api/v1/jobs/expire_matches/").json()["data"]
    status = api.get("/api/v1/jobs/status").json()["data"]

    # then only the real run counts, while the dry run is still the latest run
    assert (job["stats"]["sample_size"], job["stats"]["success_rate"]) == (1, 0.0)
    assert job["stats"]["p95_ms"] == 10
    assert job["last_run"]["id"] == dry.pk
    assert status["stats"]["totalExecutions"] == 1
    assert [item["dryRun"] for item in status["recentExecutions"]] == [True, False]


def test_job_detail_adds_recent_runs_and_missed_slots_per_schedule(api):
    # given the job's default schedule, made two days ago, and a second one made just now
    default = Schedule.objects.get(name="expire_matches")
    Schedule.objects.filter(pk=default.pk).update(created_at=timezone.now() - timedelta(days=2))
    schedule_create(by="ops", name="expire-often", job="expire_matches", cron="*/30 * * * *")
    # and runs of the job, of which the scheduler recorded only one of the last day's slots
    runs = [finished_run("expire_matches") for _ in range(3)]
    recorded_slot = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    recorded_slot -= timedelta(hours=recorded_slot.hour % 6)
    JobRun.objects.filter(pk=runs[0].pk).update(slot=recorded_slot, schedule=default)

    # when the job is read
    response = api.get("/api/v1/jobs/expire_matches/")

    # then its recent runs come newest first, naming their schedule
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["name"] == "expire_matches"
    assert [schedule["in_words"] for schedule in data["schedules"]] == [
        "every 30 minutes",
        "every 6 hours",
    ]
    assert [run["id"] for run in data["recent_runs"]] == [run.pk for run in reversed(runs)]
    assert data["recent_runs"][-1]["schedule"] == {"id": default.pk, "name": "expire_matches"}
    assert data["recent_runs"][0]["schedule"] is None
    # and each schedule's missed slots are its own, the recorded slot left out
    missed = data["missed_slots"]["expire_matches"]
    slots = [datetime.fromisoformat(slot) for slot in missed["latest"]]
    assert missed["count"] == len(slots) == 3
    assert recorded_slot not in slots
    assert all(slot.hour % 6 == 0 and slot.minute == 0 for slot in slots)
    # while the schedule made just now has missed nothing
    assert data["missed_slots"]["expire-often"] == {"count": 0, "latest": []}


def test_an_unknown_job_is_a_404_in_the_error_envelope(api):
    response = api.get("/api/v1/jobs/no_such_job/")
    assert response.status_code == 404
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "not_found"
    assert "unknown job 'no_such_job'" in body["error"]["message"]
    assert "release_escrows" in body["error"]["message"]


def test_status_has_the_seeds_shape_with_totals_and_recent_executions(api):
    # given 3 successes, 1 failure, 1 partial and 1 skipped run
    for _ in range(3):
        finished_run("release_escrows", duration_ms=245)
    failed = finished_run("expire_matches", status=RunStatus.FAILED, error="boom")
    finished_run("cycle_reminders", status=RunStatus.PARTIAL)
    finished_run("cycle_reminders", status=RunStatus.SKIPPED)

    # when the status is read
    response = api.get("/api/v1/jobs/status")

    # then the totals count the runs that did work and the rate is a percentage
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["data"]["stats"] == {
        "totalExecutions": 5,
        "successfulExecutions": 3,
        "failedExecutions": 1,
        "partialExecutions": 1,
        "skippedExecutions": 1,
        "successRate": 60.0,
    }
    recent = body["data"]["recentExecutions"]
    assert len(recent) == 6
    failure = next(item for item in recent if item["id"] == failed.pk)
    assert failure["name"] == "expire_matches"
    assert failure["success"] is False
    assert set(failure) == {
        "id",
        "name",
        "status",
        "dryRun",
        "startedAt",
        "completedAt",
        "success",
        "durationMs",
    }
    assert recent[-1]["success"] is True and recent[-1]["durationMs"] == 245


def test_pause_and_resume_record_who_and_why(api, operator):
    # when an operator pauses a job
    response = api.post(
        "/api/v1/jobs/release_escrows/pause", {"reason": "bank outage"}, format="json"
    )

    # then it is paused, by them, for that reason
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Job 'release_escrows' paused"
    assert body["data"]["state"] == "paused"
    state = JobState.objects.get(job="release_escrows")
    assert state.paused
    assert (state.changed_by, state.change_reason) == (operator.username, "bank outage")

    # when they resume it
    response = api.post(
        "/api/v1/jobs/release_escrows/resume", {"reason": "bank is back"}, format="json"
    )

    # then it runs on schedule again
    assert response.status_code == 200
    assert response.json()["data"]["state"] == "enabled"
    state.refresh_from_db()
    assert not state.paused
    assert state.change_reason == "bank is back"


def test_pausing_an_unknown_job_is_a_404(api):
    response = api.post("/api/v1/jobs/nope/pause", {"reason": "x"}, format="json")
    assert response.status_code == 404


def test_the_job_list_groups_schedules_under_their_job_in_their_own_time_zones(
    api, targets_job, settings
):
    # given one pools schedule per game: Tokyo's day ends at its midnight, London's paused
    settings.TIME_ZONE = "UTC"
    tokyo = schedule_create(
        by="ops",
        name="pools-snake-tokyo",
        job=targets_job,
        cron="0 0 * * *",
        timezone="Asia/Tokyo",
        params={"game": "snake"},
    )
    london = schedule_create(
        by="ops",
        name="pools-pong-london",
        job=targets_job,
        cron="0 0 * * *",
        timezone="Europe/London",
        params={"game": "pong"},
    )
    schedule_pause(schedule=london, by="ops", reason="pong is closed")
    run = finished_run(targets_job)
    JobRun.objects.filter(pk=run.pk).update(schedule=tokyo)

    # when the jobs are listed
    response = api.get("/api/v1/jobs/")

    # then the job lists its parameters and both schedules, by name
    assert response.status_code == 200
    job = next(item for item in response.json()["data"] if item["name"] == targets_job)
    assert job["params"] == [
        {"name": "ids", "type": "list of integer", "help": IDS_HELP, "required": False},
        {
            "name": "game",
            "type": "choice",
            "help": "A game.",
            "required": False,
            "choices": ["snake", "pong"],
            "default": "snake",
        },
    ]
    london_listed, tokyo_listed = job["schedules"]
    assert (london_listed["name"], tokyo_listed["name"]) == (london.name, tokyo.name)
    assert tokyo_listed["params"] == {"game": "snake"}
    assert (tokyo_listed["timezone"], tokyo_listed["in_words"]) == (
        "Asia/Tokyo",
        "every day at 00:00",
    )
    assert (tokyo_listed["paused_reason"], london_listed["paused_reason"]) == (
        "",
        "schedule paused",
    )
    assert tokyo_listed["last_run"]["id"] == run.pk
    assert london_listed["last_run"] is None
    # Tokyo's next three runs are its midnights: 00:00+09:00, 15:00 UTC the day before
    runs = tokyo_listed["next_runs"]
    assert len(runs) == 3
    for next_run in runs:
        assert next_run["local"].endswith("T00:00:00+09:00")
        assert next_run["utc"].endswith("T15:00:00Z")
        assert datetime.fromisoformat(next_run["local"]) == datetime.fromisoformat(next_run["utc"])
    # London's are its midnights, in its winter or summer time
    for next_run in london_listed["next_runs"]:
        local = datetime.fromisoformat(next_run["local"])
        assert (local.hour, local.minute) == (0, 0)
        assert local.utcoffset() in {timedelta(0), timedelta(hours=1)}
    # and the job's own next runs are those of its running schedule only
    assert job["next_runs"] == [next_run["utc"] for next_run in runs]


def test_the_job_list_reads_as_often_with_many_schedules_as_with_few(api, targets_job):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api.get("/api/v1/jobs/").status_code == 200
        return len(captured)

    # given one schedule of the job, with a run
    def schedule_with_a_run(index: int) -> None:
        schedule = schedule_create(
            by="ops",
            name=f"baker-{index}",
            job=targets_job,
            cron="0 6 * * *",
            params={"ids": [index]},
        )
        run = finished_run(targets_job)
        JobRun.objects.filter(pk=run.pk).update(schedule=schedule)

    schedule_with_a_run(1)
    few = queries()

    # when there are twenty
    for index in range(2, 21):
        schedule_with_a_run(index)

    # then listing the jobs reads the database as many times
    assert queries() == few
