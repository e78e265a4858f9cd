"""Run records and job states in the admin: read-only views, and guarded actions that ask for a
reason, record who asked and call the same services as the API."""

import pytest
from django.urls import reverse

from jobs.models import JobRun, JobState, RunStatus, Trigger
from jobs.registry import all_jobs
from tests.api.helpers import PAUSE, RETRY, TRIGGER, finished_run, user_with

pytestmark = pytest.mark.django_db

RUNS = reverse("admin:jobs_jobrun_changelist")
STATES = reverse("admin:jobs_jobstate_changelist")
VIEW_RUNS = "jobs.view_jobrun"
VIEW_STATES = "jobs.view_jobstate"


def action(client, url, name, selected, **extra):
    return client.post(url, {"action": name, "_selected_action": selected, **extra})


def apply(client, url, name, selected, reason):
    return action(client, url, name, selected, apply="1", reason=reason)


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
    assert "12,345 ms" in page


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
