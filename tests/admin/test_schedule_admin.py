"""Schedules in the admin: every add, change, pause, resume and removal goes through the
schedule services, is audited with the operator's name, and a refused field shows on the form
with nothing saved."""

import pytest
from django.urls import reverse

from jobs.models import JobRun, Schedule, ScheduleChange
from jobs.schedules import schedule_create
from tests.api.helpers import finished_run, user_with
from tests.dashboard.helpers import TARGETED, targeted_job

pytestmark = pytest.mark.django_db

SCHEDULES = reverse("admin:jobs_schedule_changelist")
ADD = reverse("admin:jobs_schedule_add")
VIEW = "jobs.view_schedule"
EDIT = ("jobs.view_schedule", "jobs.add_schedule", "jobs.change_schedule")
DELETE = "jobs.delete_schedule"
PAUSE_SCHEDULES = "jobs.pause_schedule"


def change_url(schedule) -> str:
    return reverse("admin:jobs_schedule_change", args=[schedule.pk])


def form(**fields) -> dict:
    """What the add/change page posts for a schedule: a Tokyo one of expire_matches."""
    return {
        "name": "matches-tokyo",
        "job": "expire_matches",
        "cron": "0 9 * * *",
        "timezone": "Asia/Tokyo",
        "params": "",
        "enabled": "on",
        "catch_up": "",
        "max_retries": "",
        "min_backoff_ms": "",
        "notes": "",
        "reason": "",
        "_save": "Save",
        **fields,
    }


def existing(name="matches-tokyo", **fields) -> Schedule:
    values = {"job": "expire_matches", "cron": "0 9 * * *", "timezone": "Asia/Tokyo", **fields}
    return schedule_create(by="setup", name=name, **values)


def test_adding_a_schedule_goes_through_the_service_and_is_audited(admin_client_for):
    operator = user_with(*EDIT)
    client = admin_client_for(operator)

    response = client.post(ADD, form(reason="Tokyo's morning sweep"))

    assert response.status_code == 302
    schedule = Schedule.objects.get(name="matches-tokyo")
    assert (schedule.cron, schedule.timezone, schedule.enabled) == ("0 9 * * *", "Asia/Tokyo", True)
    assert schedule.created_by == schedule.updated_by == operator.username
    change = ScheduleChange.objects.get(schedule=schedule)
    assert (change.action, change.changed_by, change.reason) == (
        "created",
        operator.username,
        "Tokyo's morning sweep",
    )
    assert change.after["timezone"] == "Asia/Tokyo"


def test_a_new_schedule_catches_up_as_its_job_unless_told(admin_client_for):
    client = admin_client_for(user_with(*EDIT))

    client.post(ADD, form(name="release-default", job="release_escrows", cron="0 * * * *"))
    client.post(ADD, form(name="release-no", job="release_escrows", catch_up="no"))

    assert Schedule.objects.get(name="release-default").catch_up is True  # a money job's own
    assert Schedule.objects.get(name="release-no").catch_up is False


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"cron": "61 * * * *"}, "cron", "minute"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Mars/Olympus"),
        ({"name": "expire_matches"}, "name", "exists already"),
        ({"name": "two words"}, "name", "letters, digits"),
        ({"job": "nope"}, "job", "Select a valid choice"),
        ({"params": "days=3"}, "params", "days: expire_matches has no parameter 'days'"),
        ({"params": "{not json"}, "params", "not a JSON object"),
        ({"params": '["a"]'}, "params", "not key=value"),
        ({"max_retries": "99"}, "max_retries", "from 0 to 20"),
        ({"reason": "x" * 501}, "reason", "A reason is at most 500 characters"),
    ],
)
def test_a_refused_field_shows_on_the_form_and_nothing_is_saved(
    admin_client_for, fields, field, message
):
    # given the default schedules made on migrate, and their audit
    schedules, changes = Schedule.objects.count(), ScheduleChange.objects.count()
    client = admin_client_for(user_with(*EDIT))

    # when an operator adds a schedule with one bad field
    response = client.post(ADD, form(**fields))

    # then the page comes back with the error on that field, and nothing was written
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field]
    assert message in " ".join(errors[field])
    assert Schedule.objects.count() == schedules
    assert ScheduleChange.objects.count() == changes


def test_parameters_are_a_json_object_or_key_value_lines_checked_by_the_job(admin_client_for):
    client = admin_client_for(user_with(*EDIT))
    with targeted_job():
        as_lines = client.post(
            ADD, form(name="targets-lines", job=TARGETED, params="ids=9,4,4\ngame=snake")
        )
        as_json = client.post(
            ADD, form(name="targets-json", job=TARGETED, params='{"ids": [4, 9], "game": "pong"}')
        )
        ill_typed = client.post(ADD, form(name="targets-bad", job=TARGETED, params="ids=four"))

    assert as_lines.status_code == as_json.status_code == 302
    assert Schedule.objects.get(name="targets-lines").params == {"ids": [4, 9], "game": "snake"}
    assert Schedule.objects.get(name="targets-json").params == {"ids": [4, 9], "game": "pong"}
    assert ill_typed.status_code == 200
    errors = ill_typed.context["adminform"].form.errors
    assert errors["params"] == ["ids: item 0: A valid integer is required."]
    assert not Schedule.objects.filter(name="targets-bad").exists()


def test_a_change_needs_a_reason_and_audits_only_what_changed(admin_client_for):
    schedule = existing(catch_up=False)
    operator = user_with(*EDIT)
    client = admin_client_for(operator)

    without = client.post(change_url(schedule), form(cron="30 9 * * *"))
    assert without.status_code == 200
    assert without.context["adminform"].form.errors == {"reason": ["This field is required."]}
    schedule.refresh_from_db()
    assert schedule.cron == "0 9 * * *"

    done = client.post(
        change_url(schedule), form(cron="30 9 * * *", catch_up="no", reason="later in Tokyo")
    )

    assert done.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.updated_by) == ("30 9 * * *", operator.username)
    change = ScheduleChange.objects.filter(schedule=schedule).latest("id")
    assert (change.action, change.changed_by, change.reason) == (
        "updated",
        operator.username,
        "later in Tokyo",
    )
    assert (change.before, change.after) == ({"cron": "0 9 * * *"}, {"cron": "30 9 * * *"})


def test_a_refused_change_leaves_the_schedule_and_its_audit_alone(admin_client_for):
    schedule = existing()
    changes = ScheduleChange.objects.count()
    client = admin_client_for(user_with(*EDIT))

    response = client.post(
        change_url(schedule), form(timezone="Nowhere/Special", catch_up="yes", reason="move")
    )

    assert response.status_code == 200
    assert "timezone" in response.context["adminform"].form.errors
    schedule.refresh_from_db()
    assert schedule.timezone == "Asia/Tokyo"
    assert ScheduleChange.objects.count() == changes


def test_the_change_page_lists_the_audit_with_who_when_and_what(admin_client_for):
    schedule = existing(reason="set up")
    client = admin_client_for(user_with(*EDIT))
    client.post(change_url(schedule), form(cron="15 9 * * *", reason="<b>quarter past</b>"))

    page = client.get(change_url(schedule)).content.decode()

    audit = page[page.index("field-changes_text") :]
    assert audit.index("Updated") < audit.index("Created")
    assert "&lt;b&gt;quarter past&lt;/b&gt;" in audit and "<b>quarter past</b>" not in audit
    assert "cron: &quot;0 9 * * *&quot; → &quot;15 9 * * *&quot;" in audit
    assert "set up" in audit and "setup" in audit
    # and the next runs are shown in Tokyo's time and in UTC
    assert "09:15 JST" in page and "00:15 UTC" in page


def test_deleting_one_or_many_goes_through_the_service_and_is_audited(admin_client_for):
    one, two, three = existing("tokyo-1"), existing("tokyo-2"), existing("tokyo-3")
    operator = user_with(*EDIT, DELETE)
    client = admin_client_for(operator)

    single = client.post(reverse("admin:jobs_schedule_delete", args=[one.pk]), {"post": "yes"})
    bulk = client.post(
        SCHEDULES,
        {"action": "delete_selected", "_selected_action": [two.pk, three.pk], "post": "yes"},
    )

    assert single.status_code == bulk.status_code == 302
    assert not Schedule.objects.filter(name__startswith="tokyo-").exists()
    removed = ScheduleChange.objects.filter(action="removed").order_by("schedule_name")
    assert [change.schedule_name for change in removed] == ["tokyo-1", "tokyo-2", "tokyo-3"]
    assert {change.changed_by for change in removed} == {operator.username}
    assert all(change.before["timezone"] == "Asia/Tokyo" for change in removed)


def test_pause_and_resume_actions_audit_the_operator_and_reason(admin_client_for):
    tokyo, other = existing(), existing("matches-osaka")
    operator = user_with(VIEW, PAUSE_SCHEDULES)
    client = admin_client_for(operator)
    selected = [tokyo.pk, other.pk]

    confirm = client.post(SCHEDULES, {"action": "pause_schedules", "_selected_action": selected})
    assert "admin/steward/reason_form.html" in [t.name for t in confirm.templates]
    assert Schedule.objects.filter(pk__in=selected, enabled=True).count() == 2

    client.post(
        SCHEDULES,
        {
            "action": "pause_schedules",
            "_selected_action": selected,
            "apply": "1",
            "reason": "holiday",
        },
    )
    assert not Schedule.objects.filter(pk__in=selected, enabled=True).exists()
    client.post(
        SCHEDULES,
        {
            "action": "resume_schedules",
            "_selected_action": [tokyo.pk],
            "apply": "1",
            "reason": "ok",
        },
    )

    tokyo.refresh_from_db()
    assert tokyo.enabled
    audit = ScheduleChange.objects.filter(action__in=["paused", "resumed"]).order_by("id")
    assert [(c.schedule_name, c.action, c.changed_by, c.reason) for c in audit] == [
        ("matches-osaka", "paused", operator.username, "holiday"),
        ("matches-tokyo", "paused", operator.username, "holiday"),
        ("matches-tokyo", "resumed", operator.username, "ok"),
    ]


def test_pausing_schedules_is_refused_without_the_permission(admin_client_for):
    schedule = existing()
    client = admin_client_for(user_with(*EDIT, "jobs.pause_jobstate"))

    page = client.get(SCHEDULES).content.decode()
    client.post(
        SCHEDULES,
        {
            "action": "pause_schedules",
            "_selected_action": [schedule.pk],
            "apply": "1",
            "reason": "sneaky",
        },
    )

    assert 'value="pause_schedules"' not in page
    schedule.refresh_from_db()
    assert schedule.enabled


def test_the_list_shows_words_zone_params_state_next_run_and_last_run(admin_client_for):
    with targeted_job():
        targeted = schedule_create(
            by="setup",
            name="targets-tokyo",
            job=TARGETED,
            cron="0 0 * * *",
            timezone="Asia/Tokyo",
            params={"game": "snake"},
            enabled=False,
        )
        run = finished_run(TARGETED)
        JobRun.objects.filter(pk=run.pk).update(schedule=targeted)
        client = admin_client_for(user_with(VIEW))

        response = client.get(SCHEDULES, {"q": "targets"})

    assert response.status_code == 200
    assert [schedule.name for schedule in response.context["cl"].result_list] == ["targets-tokyo"]
    row = response.content.decode().split('id="result_list"', 1)[1]
    assert (
        "every day at 00:00" in row and "<code style='white-space:nowrap'>0 0 * * *</code>" in row
    )
    assert "game=&quot;snake&quot;" in row
    assert ">paused</span>" in row
    assert "00:00 JST" in row and "15:00 UTC" in row
    assert f'<a href="{reverse("admin:jobs_jobrun_change", args=[run.pk])}">#{run.pk}</a>' in row
    filters = {spec.title for spec in response.context["cl"].filter_specs}
    assert {"job", "enabled", "timezone"} <= filters


def test_a_viewer_sees_the_schedule_read_only(admin_client_for):
    schedule = existing(params={})
    client = admin_client_for(user_with(VIEW))

    page = client.get(change_url(schedule)).content.decode()
    refused = client.post(change_url(schedule), form(cron="5 9 * * *", reason="sneaky"))

    assert 'name="_save"' not in page and 'name="reason"' not in page
    assert refused.status_code == 403
    schedule.refresh_from_db()
    assert schedule.cron == "0 9 * * *"
