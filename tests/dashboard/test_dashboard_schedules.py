"""The dashboard's schedules (grouped under their job, next runs in their own time zone and in
UTC, paused or not) and runs with parameters: given on the trigger form, shown where runs are."""

import re
from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.urls import reverse

from jobs.models import JobRun, JobState, Schedule, ScheduleChange
from jobs.schedules import schedule_create, schedule_pause
from tests.api.helpers import PAUSE, TRIGGER, finished_run, user_with
from tests.dashboard.helpers import TARGETED, targeted_job

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("dashboard")
PAUSE_SCHEDULES = "jobs.pause_schedule"
NEXT_RUN = re.compile(
    r'<span class="local">(\d{4}-\d\d-\d\d) (\d\d:\d\d) (\w+)</span>'
    r'(?: <span class="muted small utc">(\d{4}-\d\d-\d\d) (\d\d:\d\d) UTC</span>)?'
)


def logged_in(*perms) -> Client:
    client = Client()
    client.force_login(user_with(*perms))
    return client


def section(page: str, start: str, end: str) -> str:
    return page[page.index(start) :].split(end, 1)[0]


def trigger(client, action="run", *, job=TARGETED, params="", reason="asked"):
    return client.post(
        reverse("dashboard-job-action", args=[job]),
        {"action": action, "reason": reason, "params": params},
    )


def messages_of(client) -> list[str]:
    return [str(message) for message in client.get(DASHBOARD).context["messages"]]


def test_schedules_are_grouped_under_their_job_with_local_and_utc_next_runs():
    # given expire_matches' default schedule (UTC), a Tokyo one paused, and a paused job
    schedule_create(
        by="ops",
        name="matches-tokyo",
        job="expire_matches",
        cron="0 0 * * *",
        timezone="Asia/Tokyo",
    )
    schedule_pause(schedule="matches-tokyo", by="ops", reason="quiet week")
    JobState.objects.create(job="cycle_reminders", paused=True, changed_by="ops")

    # when an operator opens the dashboard
    page = logged_in().get(DASHBOARD).content.decode()

    # then expire_matches' schedules are listed together under it
    group = section(page, '<tbody data-schedules-of="expire_matches">', "</tbody>")
    assert re.findall(r'data-schedule="([^"]+)"', group) == ["expire_matches", "matches-tokyo"]
    tokyo = section(group, 'data-schedule="matches-tokyo"', "</tr>")
    assert "Asia/Tokyo" in tokyo and "schedule paused" in tokyo
    # each with its next three runs in its own time zone and in UTC: Tokyo's midnight is
    # 15:00 UTC the day before
    runs = NEXT_RUN.findall(tokyo)
    assert len(runs) == 3
    for local_day, local_time, zone, utc_day, utc_time in runs:
        assert (local_time, zone, utc_time) == ("00:00", "JST", "15:00")
        day = datetime.fromisoformat(local_day) - timedelta(days=1)
        assert utc_day == day.date().isoformat()
    default = section(group, 'data-schedule="expire_matches"', "</tr>")
    assert [run[2:] for run in NEXT_RUN.findall(default)] == [("UTC", "", "")] * 3
    assert "running" in default
    # and a paused job's schedules say why their slots are skipped
    reminders = section(page, '<tbody data-schedules-of="cycle_reminders">', "</tbody>")
    assert "job paused" in reminders and "job cycle_reminders paused" in reminders
    # and the jobs table names each schedule, its words and cron unwrapped
    jobs_row = section(page, '<tr data-job="expire_matches">', "</tr>")
    assert "matches-tokyo" in jobs_row and "every day at 00:00" in jobs_row
    assert '<code class="cron">0 0 * * *</code> Asia/Tokyo' in jobs_row


def test_a_schedule_is_paused_and_resumed_from_the_dashboard_and_audited():
    schedule = Schedule.objects.get(name="expire_matches")
    operator = user_with(PAUSE_SCHEDULES)
    client = Client()
    client.force_login(operator)
    url = reverse("dashboard-schedule-action", args=[schedule.pk])
    assert 'value="pause"' in section(
        client.get(DASHBOARD).content.decode(), 'data-schedule="expire_matches"', "</tr>"
    )

    client.post(url, {"action": "pause", "reason": "incident 9"})
    schedule.refresh_from_db()
    assert not schedule.enabled
    client.post(url, {"action": "resume"})

    schedule.refresh_from_db()
    assert schedule.enabled
    audit = ScheduleChange.objects.filter(schedule=schedule, action__in=["paused", "resumed"])
    assert [(c.action, c.changed_by, c.reason) for c in audit.order_by("id")] == [
        ("paused", operator.username, "incident 9"),
        ("resumed", operator.username, "Resume from the dashboard"),
    ]
    assert messages_of(client)[-1] == "Schedule expire_matches resumed."


def test_pausing_a_schedule_needs_its_permission():
    schedule = Schedule.objects.get(name="expire_matches")
    client = logged_in(TRIGGER, PAUSE)  # may pause jobs, not schedules

    page = client.get(DASHBOARD).content.decode()
    response = client.post(
        reverse("dashboard-schedule-action", args=[schedule.pk]), {"action": "pause"}
    )

    assert "dashboard-schedule-action" not in page and "/schedules/" not in page
    assert response.status_code == 403
    schedule.refresh_from_db()
    assert schedule.enabled
    missing = reverse("dashboard-schedule-action", args=[schedule.pk + 1_000])
    assert logged_in(PAUSE_SCHEDULES).post(missing, {"action": "pause"}).status_code == 404


@pytest.mark.parametrize(
    "params",
    ["ids=9,4,4\ngame=snake", '{"ids": [4, 9], "game": "snake"}', "  ids = 4, 9 \n\ngame=snake"],
)
def test_a_run_is_triggered_with_parameters_as_json_or_key_value_lines(params):
    client = logged_in(TRIGGER)
    with targeted_job():
        response = trigger(client, params=params)

        assert response.status_code == 302
        run = JobRun.objects.get()
        assert run.params == {"game": "snake", "ids": [4, 9]}
        # a targeted run always goes to the urgent lane
        assert messages_of(client) == [
            f'Run now of {TARGETED} (game="snake" ids=[4, 9]) queued as run #{run.pk} '
            "on the urgent lane."
        ]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("game=chess", 'game: "chess" is not a valid choice.'),
        ("ids=4,x", "ids: item 1: A valid integer is required."),
        ("colour=red", f"colour: {TARGETED} has no parameter 'colour'"),
        ("{broken", "params: not a JSON object"),
        ("[1, 2]", "params: '[1, 2]' is not key=value"),
        ("x" * 16_001, "Parameters are at most 16000 characters; these have 16001."),
    ],
)
def test_bad_parameters_are_refused_with_the_field_and_nothing_is_recorded(params, message):
    client = logged_in(TRIGGER)
    with targeted_job():
        response = trigger(client, "dry_run", params=params)

        assert response.status_code == 302
        assert not JobRun.objects.exists()
        shown = messages_of(client)
        assert len(shown) == 1
        assert shown[0].startswith(f"Dry run of {TARGETED} was not done: ")
        assert message in shown[0]


def test_a_job_without_parameters_refuses_them():
    client = logged_in(TRIGGER)

    trigger(client, job="rotate_featured", params="week=3")

    assert not JobRun.objects.exists()
    assert "week: rotate_featured has no parameter 'week'" in messages_of(client)[0]


def test_the_parameters_box_is_shown_for_jobs_that_take_them_to_whoever_may_trigger():
    with targeted_job():
        may_trigger = logged_in(TRIGGER).get(DASHBOARD).content.decode()
        may_not = logged_in(PAUSE).get(DASHBOARD).content.decode()

    targeted = section(may_trigger, f'<tr data-job="{TARGETED}">', "</tr>")
    assert f'aria-label="Parameters for {TARGETED}"' in targeted
    assert 'maxlength="16000"' in targeted
    assert "accepts ids (list of integer): Just these rows; game (choice)." in targeted
    assert 'name="params"' not in section(may_trigger, '<tr data-job="rotate_featured">', "</tr>")
    assert 'name="params"' not in may_not


def test_runs_show_their_parameters_in_the_lists_and_on_their_page():
    run = finished_run("expire_matches", status="failed", error="boom")
    schedule = Schedule.objects.get(name="expire_matches")
    JobRun.objects.filter(pk=run.pk).update(
        params={"match_ids": [3, 5]}, schedule=schedule, slot=run.as_of.replace(second=0)
    )
    client = logged_in()

    page = client.get(DASHBOARD).content.decode()
    detail = client.get(reverse("dashboard-run", args=[run.pk])).content.decode()

    recent = section(page, f'<tr data-run="{run.pk}"', "</tr>")
    assert '<div class="muted small params" title="match_ids=[3, 5]">match_ids=[3, 5]</div>' in (
        recent
    )
    assert "match_ids=[3, 5]" in section(page, 'id="failures"', "</section>")
    assert '<code class="params">match_ids=[3, 5]</code>' in detail
    assert f'{reverse("admin:jobs_schedule_change", args=[schedule.pk])}">expire_matches</a>' in (
        detail
    )
    assert (
        "<dt>Parameters</dt><dd>none</dd>"
        in client.get(reverse("dashboard-run", args=[finished_run().pk])).content.decode()
    )
