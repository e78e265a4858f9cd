"""GET/POST schedules/, GET/PATCH/DELETE schedules/{id}/ and POST schedules/{id}/pause|resume:
the baker seed's initialize, update and remove, each change audited."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from jobs.models import JobRun, RunStatus, Schedule, ScheduleChange
from jobs.schedules import schedule_create
from jobs.scheduling import job_pause
from tests.api.helpers import finished_run

pytestmark = pytest.mark.django_db

BAKER = {
    "name": "baker-7-payouts",
    "job": "api_targets",
    "cron": "30 17 * * 1-5",
    "timezone": "Africa/Lagos",
    "params": {"ids": [7]},
    "max_retries": 5,
    "min_backoff_ms": 60_000,
    "notes": "Baker 7 is paid on weekdays at 17:30 Lagos time.",
}


def changes_of(schedule_id: int) -> list[ScheduleChange]:
    return list(ScheduleChange.objects.filter(schedule_id=schedule_id).order_by("id"))


def test_adding_a_schedule_saves_it_and_audits_who_and_why(api, operator, targets_job):
    # when an operator adds a schedule for one baker, saying why
    response = api.post("/api/v1/schedules/", {**BAKER, "reason": "baker 7 signed up"}, "json")

    # then a 201 carries the schedule as saved, its params completed by the job's defaults
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "Schedule 'baker-7-payouts' created"
    data = body["data"]
    schedule = Schedule.objects.get(name="baker-7-payouts")
    assert data["id"] == schedule.pk
    assert data["params"] == schedule.params == {"ids": [7], "game": "snake"}
    assert (data["job"], data["cron"], data["timezone"]) == (
        "api_targets",
        "30 17 * * 1-5",
        "Africa/Lagos",
    )
    assert (data["enabled"], data["catch_up"], data["paused_reason"]) == (True, False, "")
    assert (data["max_retries"], data["min_backoff_ms"]) == (5, 60_000)
    assert data["created_by"] == data["updated_by"] == schedule.created_by == operator.username
    assert data["last_run"] is None
    assert data["missed_slots"] == {"count": 0, "latest": []}
    # its next runs are weekdays at 17:30 in Lagos, 16:30 UTC
    for next_run in data["next_runs"]:
        local = datetime.fromisoformat(next_run["local"])
        assert (local.hour, local.minute, local.utcoffset()) == (17, 30, timedelta(hours=1))
        assert local.isoweekday() <= 5
        assert next_run["utc"].endswith("Z")
        assert datetime.fromisoformat(next_run["utc"]) == local
    # and one audit row says who made it, why, and with what
    (created,) = changes_of(schedule.pk)
    assert (created.action, created.changed_by, created.reason) == (
        "created",
        operator.username,
        "baker 7 signed up",
    )
    assert created.before is None
    assert created.after == {
        **BAKER,
        "params": {"ids": [7], "game": "snake"},
        "enabled": True,
        "catch_up": False,
    }
    assert data["changes"] == [
        {
            "action": "created",
            "changed_by": operator.username,
            "changed_at": data["changes"][0]["changed_at"],
            "reason": "baker 7 signed up",
            "before": None,
            "after": created.after,
        }
    ]


def test_a_schedule_without_a_reason_or_defaults_gets_the_jobs_own(api):
    # when a money job's schedule is added with only its name, job and cron
    response = api.post(
        "/api/v1/schedules/",
        {"name": "release-quarterly", "job": "release_escrows", "cron": "15 * * * *"},
        "json",
    )

    # then it runs in UTC with the job's catch-up policy, and the audit has no reason
    assert response.status_code == 201
    data = response.json()["data"]
    assert (data["timezone"], data["params"], data["catch_up"]) == ("UTC", {}, True)
    assert (data["max_retries"], data["min_backoff_ms"], data["notes"]) == (None, None, "")
    assert ScheduleChange.objects.get(schedule_id=data["id"]).reason == ""


def test_the_list_has_every_schedule_or_one_jobs(api, targets_job):
    # given a second schedule of release_escrows beside every job's default one
    schedule_create(by="ops", name="release-late", job="release_escrows", cron="45 23 * * *")

    # when all schedules, and release_escrows' alone, are listed
    everything = api.get("/api/v1/schedules/")
    release = api.get("/api/v1/schedules/", {"job": "release_escrows"})

    # then the first has them all, the second just that job's, by name
    assert everything.status_code == release.status_code == 200
    assert {item["name"] for item in everything.json()["data"]} == set(
        Schedule.objects.values_list("name", flat=True)
    )
    listed = release.json()["data"]
    assert [item["name"] for item in listed] == ["release-late", "release_escrows"]
    assert listed[0]["in_words"] == "every day at 23:45"


def test_a_schedules_detail_has_its_last_run_missed_slots_and_audit(api):
    # given the hourly default schedule of release_escrows, made a day ago, with one run
    schedule = Schedule.objects.get(name="release_escrows")
    Schedule.objects.filter(pk=schedule.pk).update(created_at=timezone.now() - timedelta(days=1))
    run = finished_run("release_escrows")
    slot = timezone.now().replace(minute=0, second=0, microsecond=0)
    JobRun.objects.filter(pk=run.pk).update(schedule=schedule, slot=slot)

    # when it is read
    response = api.get(f"/api/v1/schedules/{schedule.pk}/")

    # then its run is its last, the other slots of the window are missed
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["last_run"]["id"] == run.pk
    assert data["last_run"]["status"] == RunStatus.SUCCEEDED
    assert datetime.fromisoformat(data["last_run"]["slot"]) == slot
    missed = [datetime.fromisoformat(moment) for moment in data["missed_slots"]["latest"]]
    assert data["missed_slots"]["count"] == 23
    assert len(missed) == 20
    assert missed[-1] == slot - timedelta(hours=1)
    # and its audit has the default made on migrate
    assert [(change["action"], change["changed_by"]) for change in data["changes"]] == [
        ("created", "migrate")
    ]


def test_editing_a_schedule_audits_the_changed_fields_before_and_after(api, operator):
    # given a schedule
    schedule = schedule_create(
        by="ops", name="reminders-eu", job="cycle_reminders", cron="0 9 * * *"
    )

    # when an operator moves it to 08:00 Berlin time, saying why
    response = api.patch(
        f"/api/v1/schedules/{schedule.pk}/",
        {"cron": "0 8 * * *", "timezone": "Europe/Berlin", "reason": "earlier for Europe"},
        "json",
    )

    # then it is saved, and the audit keeps just those fields, who and why
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Schedule 'reminders-eu' updated"
    assert (body["data"]["cron"], body["data"]["timezone"]) == ("0 8 * * *", "Europe/Berlin")
    assert body["data"]["updated_by"] == operator.username
    local = datetime.fromisoformat(body["data"]["next_runs"][0]["local"])
    assert local.hour == 8
    assert local.utcoffset() in {timedelta(hours=1), timedelta(hours=2)}
    updated = changes_of(schedule.pk)[-1]
    assert (updated.action, updated.changed_by, updated.reason) == (
        "updated",
        operator.username,
        "earlier for Europe",
    )
    assert updated.before == {"cron": "0 9 * * *", "timezone": "UTC"}
    assert updated.after == {"cron": "0 8 * * *", "timezone": "Europe/Berlin"}
    assert [change["action"] for change in body["data"]["changes"]] == ["updated", "created"]


def test_an_edit_that_changes_nothing_records_nothing(api):
    schedule = Schedule.objects.get(name="cleanup")

    response = api.patch(
        f"/api/v1/schedules/{schedule.pk}/", {"cron": schedule.cron, "reason": "r"}, "json"
    )

    assert response.status_code == 200
    assert response.json()["message"] == "Schedule 'cleanup' unchanged"
    assert len(changes_of(schedule.pk)) == 1


def test_editing_a_per_entity_schedule_revalidates_its_params(api, targets_job):
    # given a baker's schedule
    schedule = schedule_create(by="ops", **BAKER)

    # when its baker changes and its params are replaced
    response = api.patch(
        f"/api/v1/schedules/{schedule.pk}/", {"params": {"ids": [9, 8], "game": "pong"}}, "json"
    )

    # then the params are stored as the job takes them
    assert response.status_code == 200
    schedule.refresh_from_db()
    assert schedule.params == {"ids": [8, 9], "game": "pong"}
    assert changes_of(schedule.pk)[-1].after == {"params": {"ids": [8, 9], "game": "pong"}}


def test_pausing_and_resuming_a_schedule_are_audited(api, operator):
    schedule = Schedule.objects.get(name="expire_matches")
    url = f"/api/v1/schedules/{schedule.pk}"

    # when an operator pauses it
    paused = api.post(f"{url}/pause", {"reason": "matching is down"}, "json")

    # then its slots are recorded skipped from now on, and the audit says who and why
    assert paused.status_code == 200
    assert paused.json()["message"] == "Schedule 'expire_matches' paused"
    assert (paused.json()["data"]["enabled"], paused.json()["data"]["paused_reason"]) == (
        False,
        "schedule paused",
    )
    change = changes_of(schedule.pk)[-1]
    assert (change.action, change.changed_by, change.reason) == (
        "paused",
        operator.username,
        "matching is down",
    )
    assert (change.before, change.after) == ({"enabled": True}, {"enabled": False})

    # when it is paused again, then nothing more is recorded
    again = api.post(f"{url}/pause", {}, "json")
    assert again.json()["message"] == "Schedule 'expire_matches' was already paused"
    assert len(changes_of(schedule.pk)) == 2

    # when it is resumed without a body, then it runs again
    resumed = api.post(f"{url}/resume")
    assert resumed.status_code == 200
    assert resumed.json()["message"] == "Schedule 'expire_matches' resumed"
    assert resumed.json()["data"]["paused_reason"] == ""
    assert changes_of(schedule.pk)[-1].action == "resumed"


def test_a_paused_job_pauses_its_schedules(api):
    job_pause(job="cleanup", by="ops", reason="disk full")

    data = api.get("/api/v1/schedules/", {"job": "cleanup"}).json()["data"]

    assert [(item["enabled"], item["paused_reason"]) for item in data] == [
        (True, "job cleanup paused")
    ]


def test_removing_a_schedule_keeps_its_runs_and_audit(api, operator):
    # given a schedule with a run
    schedule = schedule_create(by="ops", name="old-cleanup", job="cleanup", cron="0 4 * * *")
    run = finished_run("cleanup")
    JobRun.objects.filter(pk=run.pk).update(schedule=schedule)

    # when an operator removes it, saying why
    response = api.delete(f"/api/v1/schedules/{schedule.pk}/?reason=baker+7+left")

    # then it is gone, its run stays without it, and the audit names it with who and why
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "data": {"id": schedule.pk, "name": "old-cleanup"},
        "message": "Schedule 'old-cleanup' removed",
    }
    assert not Schedule.objects.filter(pk=schedule.pk).exists()
    run.refresh_from_db()
    assert run.schedule is None
    removed = ScheduleChange.objects.get(schedule_name="old-cleanup", action="removed")
    assert (removed.changed_by, removed.reason, removed.schedule) == (
        operator.username,
        "baker 7 left",
        None,
    )
    assert removed.before["cron"] == "0 4 * * *"
    assert removed.after is None
    assert api.get(f"/api/v1/schedules/{schedule.pk}/").status_code == 404


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("get", "/"), ("patch", "/"), ("delete", "/"), ("post", "/pause"), ("post", "/resume")],
)
@pytest.mark.parametrize("schedule_id", [424242, 99999999999999999999])
def test_an_unknown_schedule_is_a_404(api, method, suffix, schedule_id):
    response = getattr(api, method)(f"/api/v1/schedules/{schedule_id}{suffix}", {}, "json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert str(schedule_id) in response.json()["error"]["message"]


def test_runs_show_their_params_and_schedule_and_filter_by_schedule(api):
    # given a scheduled run of one schedule and a run of another
    schedule = Schedule.objects.get(name="release_escrows")
    mine = finished_run("release_escrows")
    JobRun.objects.filter(pk=mine.pk).update(schedule=schedule)
    other = finished_run("expire_matches")
    JobRun.objects.filter(pk=other.pk).update(schedule=Schedule.objects.get(name="expire_matches"))

    # when the runs of the first schedule are listed, and the run is read
    listed = api.get("/api/v1/runs/", {"schedule": schedule.pk}).json()["data"]["executions"]
    detail = api.get(f"/api/v1/runs/{mine.pk}/").json()["data"]

    # then only its run is listed, naming the schedule, with its (empty) params
    assert [run["id"] for run in listed] == [mine.pk]
    for run in (listed[0], detail):
        assert run["schedule"] == {"id": schedule.pk, "name": "release_escrows"}
        assert run["params"] == {}
