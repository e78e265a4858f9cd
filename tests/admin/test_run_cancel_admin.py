"""Cancelling runs in the admin: the action on selected runs and the button on a run's page ask
a reason and go through the cancel service, which audits them; a finished run is refused by
name and nothing of it changes."""

import pytest
from django.urls import reverse

from jobs.admin.tools import STATUS_COLOURS
from jobs.models import ControlAction, JobRun, RunStatus, Trigger
from jobs.services import job_run_request
from tests.api.helpers import finished_run, user_with

pytestmark = pytest.mark.django_db

RUNS = reverse("admin:jobs_jobrun_changelist")
VIEW_RUNS = "jobs.view_jobrun"
CANCEL = "jobs.cancel_jobrun"


def queued_run(**fields) -> JobRun:
    return job_run_request(enqueue=False, job="expire_matches", trigger=Trigger.CLI, **fields)


def running_run() -> JobRun:
    run = queued_run()
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    run.refresh_from_db()
    return run


def change_url(run) -> str:
    return reverse("admin:jobs_jobrun_change", args=[run.pk])


def cancel_url(run) -> str:
    return reverse("admin:jobs_jobrun_cancel", args=[run.pk])


def apply(client, selected, reason):
    return client.post(
        RUNS,
        {"action": "cancel_runs", "_selected_action": selected, "apply": "1", "reason": reason},
    )


def shown_messages(response) -> list[str]:
    return [str(message) for message in response.wsgi_request._messages]


def test_cancelling_selected_runs_cancels_the_unfinished_and_names_the_finished(
    admin_client_for,
):
    # given a queued, a running and a succeeded run, and an operator allowed to cancel
    queued, running, done = queued_run(), running_run(), finished_run()
    operator = user_with(VIEW_RUNS, CANCEL)
    client = admin_client_for(operator)
    selected = [queued.pk, running.pk, done.pk]

    # when they choose the action, a reason is asked first and nothing changes yet
    confirm = client.post(RUNS, {"action": "cancel_runs", "_selected_action": selected})
    assert "admin/steward/reason_form.html" in [t.name for t in confirm.templates]
    assert not JobRun.objects.filter(cancel_requested_at__isnull=False).exists()

    response = apply(client, selected, reason="wrong parameters")

    # then the queued run is cancelled, the running one asked to stop, the finished one left
    # alone with a message naming it, and each cancel audited
    assert response.status_code == 302
    queued.refresh_from_db(), running.refresh_from_db(), done.refresh_from_db()
    assert queued.status == RunStatus.CANCELLED
    assert (running.status, running.cancel_requested_by, running.cancel_reason) == (
        RunStatus.RUNNING,
        operator.username,
        "wrong parameters",
    )
    assert (done.status, done.cancel_requested_at) == (RunStatus.SUCCEEDED, None)
    shown = shown_messages(response)
    assert f"Cancelled #{queued.pk}." in shown
    assert any(f"Asked #{running.pk} to stop" in message for message in shown)
    assert any(f"run #{done.pk} is already succeeded" in message for message in shown)
    entries = ControlAction.objects.filter(action="run_cancelled").order_by("id")
    assert [(e.target, e.actor, e.reason) for e in entries] == [
        (f"#{queued.pk} expire_matches", operator.username, "wrong parameters"),
        (f"#{running.pk} expire_matches", operator.username, "wrong parameters"),
    ]


def test_cancelling_a_finished_run_is_refused_and_changes_nothing(admin_client_for):
    done = finished_run(status=RunStatus.FAILED)
    client = admin_client_for(user_with(VIEW_RUNS, CANCEL))

    response = apply(client, [done.pk], reason="too late")

    assert response.status_code == 302
    assert any(f"Not cancelled: run #{done.pk}" in m for m in shown_messages(response))
    done.refresh_from_db()
    assert (done.status, done.cancel_requested_at) == (RunStatus.FAILED, None)
    assert not ControlAction.objects.exists()


def test_an_action_without_a_reason_is_asked_again(admin_client_for):
    run = queued_run()
    client = admin_client_for(user_with(VIEW_RUNS, CANCEL))

    response = apply(client, [run.pk], reason="")

    assert response.status_code == 200
    assert response.context["form"].errors == {"reason": ["This field is required."]}
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_cancelling_needs_the_permission(admin_client_for):
    run = queued_run()
    client = admin_client_for(user_with(VIEW_RUNS))

    listed = client.get(RUNS).content.decode()
    page = client.get(change_url(run)).content.decode()
    apply(client, [run.pk], reason="sneaky")
    button = client.post(cancel_url(run), {"apply": "1", "reason": "sneaky"})

    assert 'value="cancel_runs"' not in listed
    assert cancel_url(run) not in page
    assert button.status_code == 403
    run.refresh_from_db()
    assert (run.status, run.cancel_requested_at) == (RunStatus.QUEUED, None)
    assert not ControlAction.objects.exists()


def test_the_run_page_cancels_with_a_reason_and_shows_who_asked(admin_client_for):
    run = queued_run(urgent=True)
    operator = user_with(VIEW_RUNS, CANCEL)
    client = admin_client_for(operator)
    assert cancel_url(run) in client.get(change_url(run)).content.decode()

    asked = client.get(cancel_url(run))
    assert "admin/steward/reason_form.html" in [t.name for t in asked.templates]
    assert change_url(run) in asked.content.decode()  # the page's Cancel goes back to the run
    done = client.post(cancel_url(run), {"apply": "1", "reason": "<b>duplicate</b>"})

    assert done.status_code == 302
    assert done["Location"] == change_url(run)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    page = client.get(change_url(run)).content.decode()
    assert cancel_url(run) not in page  # a finished run offers no cancel
    assert "field-urgent" in page and "field-cancel_requested_by" in page
    assert operator.username in page[page.index("field-cancel_requested_by") :]
    assert "&lt;b&gt;duplicate&lt;/b&gt;" in page and "<b>duplicate</b>" not in page
    assert STATUS_COLOURS["cancelled"] in page


def test_the_run_page_refuses_a_finished_run_with_a_message(admin_client_for):
    done = finished_run()
    client = admin_client_for(user_with(VIEW_RUNS, CANCEL))

    response = client.post(cancel_url(done), {"apply": "1", "reason": "too late"})

    assert response.status_code == 302
    assert any(f"run #{done.pk} is already succeeded" in m for m in shown_messages(response))
    assert not ControlAction.objects.exists()
    missing = client.post(reverse("admin:jobs_jobrun_cancel", args=[999_999]), {"apply": "1"})
    assert missing.status_code == 404


def test_the_run_list_filters_cancelled_runs(admin_client_for):
    cancelled = finished_run(status=RunStatus.CANCELLED)
    finished_run()
    client = admin_client_for(user_with(VIEW_RUNS))

    response = client.get(RUNS, {"status__exact": "cancelled"})

    assert [run.pk for run in response.context["cl"].result_list] == [cancelled.pk]
    assert STATUS_COLOURS["cancelled"] in response.content.decode()
