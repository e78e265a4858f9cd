"""Run records and job states in the admin: read-only views, and guarded actions that ask for a
reason, record who asked and call the same services as the API."""

import pytest
from django.urls import reverse

from jobs.models import JobRun, JobState, RunStatus, Schedule, Trigger
from jobs.registry import all_jobs
from jobs.schedules import schedule_create, schedule_pause
from tests.api.helpers import PAUSE, RETRY, TRIGGER, finished_run, user_with
from tests.dashboard.helpers import TARGETED, targeted_job

pytestmark = pytest.mark.django_db

RUNS = reverse("admin:jobs_jobrun_changelist")
STATES = reverse("admin:jobs_jobstate_changelist")
VIEW_RUNS = "jobs.view_jobrun"
VIEW_STATES = "jobs.view_jobstate"


def action(client, url, name, selected, **extra):
    return client.post(url, {"action": name, "_selected_action": selected, **extra})


def apply(client, url, name, selected, reason, **extra):
    return action(client, url, name, selected, apply="1", reason=reason, **extra)


def row_with(page: str, text: str) -> str:
    """The table row of the page that holds `text`."""
    return next(row for row in page.split("<tr")[1:] if text in row).split("</tr>", 1)[0]


def test_a_run_is_shown_read_only_with_attempts_and_an_escaped_traceback(admin_client_for):
    run = finished_run(
        status=RunStatus.FAILED,
        error="ValueError: <b>bad</b>",
        traceback="Traceback\n  <script>alert('x')</script>\nValueError",
    )
    client = admin_client_for(user_with(VIEW_RUNS))

    response = client.get(reverse("admin:jobs_jobrun_change", args=[run.pk]))

    assert response.status_code == 200
    page = response.content.decode()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<script>alert('x')</script>" not in page
    assert "<pre style='white-space: pre-wrap'>ValueError: &lt;b&gt;bad&lt;/b&gt;</pre>" in page
    assert "test:1" in page  # the attempt's worker, from the inline
    assert 'name="_save"' not in page
    assert client.get(reverse("admin:jobs_jobrun_add")).status_code == 403


def test_the_run_list_filters_by_job_status_trigger_and_searches_errors(admin_client_for):
    wanted = finished_run("release_escrows", status=RunStatus.FAILED, error="bank timeout")
    finished_run("release_escrows", status=RunStatus.SUCCEEDED)
    finished_run("expire_matches", status=RunStatus.FAILED, error="bank timeout")
    client = admin_client_for(user_with(VIEW_RUNS))

    filtered = client.get(
        RUNS, {"job": "release_escrows", "status__exact": "failed", "trigger__exact": "schedule"}
    )
    searched = client.get(RUNS, {"q": "bank timeout"})

    assert filtered.status_code == searched.status_code == 200
    assert [run.pk for run in filtered.context["cl"].result_list] == [wanted.pk]
    assert len(searched.context["cl"].result_list) == 2
    filters = {spec.title for spec in filtered.context["cl"].filter_specs}
    assert {"job", "status", "trigger", "created at"} <= filters


def test_retrying_selected_failed_runs_asks_a_reason_and_links_new_runs(admin_client_for):
    # given two failed runs and a succeeded one, and an operator allowed to retry
    failed = [finished_run(status=RunStatus.FAILED) for _ in range(2)]
    succeeded = finished_run()
    operator = user_with(VIEW_RUNS, RETRY)
    client = admin_client_for(operator)
    selected = [run.pk for run in (*failed, succeeded)]

    # when they choose the action, the admin asks for a reason first
    confirm = action(client, RUNS, "retry_failed", selected)
    assert confirm.status_code == 200
    assert "admin/steward/reason_form.html" in [t.name for t in confirm.templates]
    assert not JobRun.objects.filter(trigger=Trigger.RETRY).exists()

    # when they give one
    done = apply(client, RUNS, "retry_failed", selected, reason="database restored")

    # then each failed run gets a linked retry recorded as theirs; the other is left alone
    assert done.status_code == 302
    retries = JobRun.objects.filter(trigger=Trigger.RETRY).order_by("retry_of_id")
    assert [retry.retry_of_id for retry in retries] == [run.pk for run in failed]
    assert {(r.requested_by, r.reason) for r in retries} == {
        (operator.username, "database restored")
    }
    assert not JobRun.objects.filter(retry_of=succeeded).exists()
    shown = [str(message) for message in client.get(RUNS).context["messages"]]
    assert any("were not failed and were left alone" in message for message in shown)


def test_an_action_needs_a_reason(admin_client_for):
    run = finished_run(status=RunStatus.FAILED)
    client = admin_client_for(user_with(VIEW_RUNS, RETRY))

    response = apply(client, RUNS, "retry_failed", [run.pk], reason="")

    assert response.status_code == 200
    assert response.context["form"].errors == {"reason": ["This field is required."]}
    assert not JobRun.objects.filter(retry_of=run).exists()


def test_retrying_is_refused_without_the_permission(admin_client_for):
    run = finished_run(status=RunStatus.FAILED)
    client = admin_client_for(user_with(VIEW_RUNS, TRIGGER, PAUSE))

    page = client.get(RUNS).content.decode()
    response = apply(client, RUNS, "retry_failed", [run.pk], reason="sneaky")

    assert 'value="retry_failed"' not in page
    assert response.status_code == 200
    assert not JobRun.objects.filter(retry_of=run).exists()


def test_job_states_list_every_job_with_schedule_next_run_and_last_outcome(admin_client_for):
    last = finished_run("release_escrows", status=RunStatus.FAILED)
    client = admin_client_for(user_with(VIEW_STATES))

    response = client.get(STATES)

    assert response.status_code == 200
    listed = [state.job for state in response.context["cl"].result_list]
    assert sorted(listed) == sorted(spec.name for spec in all_jobs())
    page = response.content.decode()
    assert "every hour at :00" in page
    assert "<code style='white-space:nowrap'>0 * * * *</code>" in page  # never wrapped
    assert f">#{last.pk}</a>" in page
    assert ">failed</span>" in page  # a coloured status badge
    assert "never run" in page


@pytest.mark.parametrize(("name", "perm"), [("run_now", TRIGGER), ("dry_run", TRIGGER)])
def test_run_now_and_dry_run_queue_a_run_recorded_as_the_operator(admin_client_for, name, perm):
    operator = user_with(VIEW_STATES, perm)
    client = admin_client_for(operator)
    client.get(STATES)  # the list creates the state rows

    response = apply(client, STATES, name, ["release_escrows"], reason="catch up")

    assert response.status_code == 302
    run = JobRun.objects.get(job="release_escrows")
    assert run.trigger == Trigger.ADMIN
    assert (run.requested_by, run.reason) == (operator.username, "catch up")
    assert run.dry_run is (name == "dry_run")
    assert run.message_id


def test_pause_and_resume_record_the_operator_and_reason(admin_client_for):
    operator = user_with(VIEW_STATES, PAUSE)
    client = admin_client_for(operator)
    client.get(STATES)

    apply(client, STATES, "pause", ["expire_matches", "cycle_reminders"], reason="migration")
    paused = JobState.objects.filter(paused=True)
    assert sorted(paused.values_list("job", flat=True)) == ["cycle_reminders", "expire_matches"]
    assert set(paused.values_list("changed_by", "change_reason")) == {
        (operator.username, "migration")
    }

    apply(client, STATES, "resume", ["expire_matches"], reason="done")
    assert list(JobState.objects.filter(paused=True).values_list("job", flat=True)) == [
        "cycle_reminders"
    ]


@pytest.mark.parametrize(
    ("name", "perm"),
    [("run_now", TRIGGER), ("dry_run", TRIGGER), ("pause", PAUSE), ("resume", PAUSE)],
)
def test_job_state_actions_are_refused_without_their_permission(admin_client_for, name, perm):
    others = {TRIGGER, PAUSE, RETRY} - {perm}
    client = admin_client_for(user_with(VIEW_STATES, *others))
    client.get(STATES)
    JobState.objects.filter(job="release_escrows").update(paused=name == "resume")

    page = client.get(STATES).content.decode()
    apply(client, STATES, name, ["release_escrows"], reason="sneaky")

    assert f'value="{name}"' not in page
    assert not JobRun.objects.exists()
    assert JobState.objects.get(job="release_escrows").paused is (name == "resume")


def test_a_reason_longer_than_500_characters_is_refused_with_a_clear_error(admin_client_for):
    run = finished_run(status=RunStatus.FAILED)
    client = admin_client_for(user_with(VIEW_RUNS, RETRY))

    response = apply(client, RUNS, "retry_failed", [run.pk], reason="x" * 501)
    accepted = apply(client, RUNS, "retry_failed", [run.pk], reason="x" * 500)

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "reason": [
            "A reason is at most 500 characters; this one has 501. Shorten it and try again."
        ]
    }
    assert 'maxlength="500"' in response.content.decode()
    assert accepted.status_code == 302
    assert JobRun.objects.get(retry_of=run).reason == "x" * 500


def test_the_run_list_shows_a_coloured_status_and_marks_only_dry_runs(admin_client_for):
    finished_run(status=RunStatus.FAILED)
    finished_run(duration_ms=12_345)
    finished_run(dry_run=True, summary={"dry_run": True})
    client = admin_client_for(user_with(VIEW_RUNS))

    page = client.get(RUNS).content.decode()

    assert page.count(">dry run</span>") == 1  # a mark on the dry run, nothing on the others
    assert "icon-no.svg" not in page and "icon-yes.svg" not in page
    assert "background:#cf222e;" in page and ">Failed</span>" in page
    assert "background:#1a7f37;" in page and ">Succeeded</span>" in page
    assert "12 s" in page and "12,345 ms" not in page


def test_a_failed_run_folds_each_attempts_traceback_and_shows_figures(admin_client_for):
    run = finished_run(
        "release_escrows",
        status=RunStatus.FAILED,
        error="OperationalError: deadlock",
        traceback="Traceback\n  File x\nOperationalError: deadlock",
        summary={"escrows_released": 1_204, "amount_released": 1_030_700},
    )
    client = admin_client_for(user_with(VIEW_RUNS))

    page = client.get(reverse("admin:jobs_jobrun_change", args=[run.pk])).content.decode()

    inline = page[page.index('id="attempts-group"') :]
    assert "<details><summary style='cursor:pointer'>OperationalError: deadlock" in inline
    assert "<details open>" not in inline  # attempts' tracebacks are folded
    assert "<details open><summary style='cursor:pointer'>the last attempt's</summary>" in page
    assert "<th style='font-weight:normal;color:#6e7781;padding-left:0'>Amount released" in page
    assert "₦10,307.00" in page and "1,204" in page
    assert "td.original p { display: none; }" in page  # no "attempt 1 of run" captions


def test_run_now_with_parameters_records_a_run_with_them(admin_client_for):
    operator = user_with(VIEW_STATES, TRIGGER)
    client = admin_client_for(operator)
    with targeted_job():
        client.get(STATES)

        # when the operator asks for a run, the page asks for a reason and the parameters
        confirm = action(client, STATES, "run_now", [TARGETED])
        page = confirm.content.decode()
        assert 'name="params"' in page and "accepts ids (list of integer): Just these rows" in page

        # and they give both, as key=value lines
        done = apply(
            client, STATES, "run_now", [TARGETED], reason="two rows", params="ids=9,4\ngame=pong"
        )

    assert done.status_code == 302
    run = JobRun.objects.get(job=TARGETED)
    assert run.params == {"ids": [4, 9], "game": "pong"}
    assert (run.requested_by, run.reason, run.dry_run) == (operator.username, "two rows", False)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("game=chess", "targeted_sweep: game: &quot;chess&quot; is not a valid choice."),
        ('{"ids": "4"', "targeted_sweep: params: not a JSON object"),
        ("colour=red", "targeted_sweep: colour: targeted_sweep has no parameter"),
        ("x" * 16_001, "Parameters are at most 16000 characters; these have 16001."),
    ],
)
def test_bad_run_parameters_show_on_the_form_and_record_nothing(admin_client_for, params, message):
    client = admin_client_for(user_with(VIEW_STATES, TRIGGER))
    with targeted_job():
        client.get(STATES)

        response = apply(client, STATES, "dry_run", [TARGETED], reason="check", params=params)

    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["params"]
    assert message in response.content.decode()
    assert not JobRun.objects.exists()


def test_parameters_for_several_jobs_are_all_checked_before_any_run(admin_client_for):
    client = admin_client_for(user_with(VIEW_STATES, TRIGGER))
    with targeted_job():
        client.get(STATES)

        response = apply(
            client, STATES, "run_now", [TARGETED, "expire_matches"], reason="x", params="ids=4"
        )

    assert response.status_code == 200
    assert "expire_matches: ids: expire_matches has no parameter" in response.content.decode()
    assert not JobRun.objects.exists()


def test_job_states_list_each_jobs_schedules_with_their_next_run(admin_client_for):
    schedule_create(
        by="ops",
        name="cycles-tokyo",
        job="cycle_reminders",
        cron="0 9 * * *",
        timezone="Asia/Tokyo",
    )
    schedule_pause(schedule="cycle_reminders", by="ops")
    client = admin_client_for(user_with(VIEW_STATES))

    page = client.get(STATES).content.decode()

    row = row_with(page, "cycles-tokyo")
    assert ">cycle_reminders</a></th>" in row  # the job's own row
    assert ">cycle_reminders</a> <span" in row and ">paused</span>" in row  # the default, paused
    assert "every day at 09:00 <code style='white-space:nowrap'>0 9 * * *</code> Asia/Tokyo" in row
    # the next run is the Tokyo one's (the paused default's slots are skipped): JST and UTC
    assert "09:00 JST" in row and "00:00 UTC" in row


def test_a_run_shows_its_parameters_and_links_its_schedule(admin_client_for):
    schedule = Schedule.objects.get(name="expire_matches")
    run = finished_run("expire_matches")
    JobRun.objects.filter(pk=run.pk).update(schedule=schedule, params={"match_ids": [3, 5]})
    other = finished_run("expire_matches")
    client = admin_client_for(user_with(VIEW_RUNS))

    page = client.get(reverse("admin:jobs_jobrun_change", args=[run.pk])).content.decode()
    listed = client.get(RUNS).content.decode()
    filtered = client.get(RUNS, {"schedule__id__exact": schedule.pk})

    assert "match_ids=[3, 5]" in page
    assert f'<a href="{reverse("admin:jobs_schedule_change", args=[schedule.pk])}">' in page
    assert "match_ids=[3, 5]</div>" in listed  # under the job's name in the list
    assert [listed_run.pk for listed_run in filtered.context["cl"].result_list] == [run.pk]
    assert other.pk != run.pk
