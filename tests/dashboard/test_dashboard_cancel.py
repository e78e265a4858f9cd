"""Cancelling a run from its dashboard page, and asking for an urgent run."""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs.controls import queue_pause
from jobs.models import ControlAction, JobRun, RunStatus, Trigger
from jobs.services import job_run_request
from tests.api.helpers import TRIGGER, finished_run, user_with

pytestmark = pytest.mark.django_db

CANCEL = "jobs.cancel_jobrun"
DASHBOARD = reverse("dashboard")


def logged_in(*perms) -> Client:
    client = Client()
    client.force_login(user_with(*perms))
    return client


def messages_of(response) -> list[str]:
    """The messages the request added."""
    return [str(message) for message in response.wsgi_request._messages._queued_messages]


def run_page(client, run: JobRun) -> str:
    return client.get(reverse("dashboard-run", args=[run.pk])).content.decode()


def cancel(client, run_id: int, reason: str = "wrong params"):
    return client.post(reverse("dashboard-run-cancel", args=[run_id]), {"reason": reason})


def queued_run() -> JobRun:
    return job_run_request(enqueue=False, job="expire_matches", trigger=Trigger.CLI)


def running_run() -> JobRun:
    return JobRun.objects.create(
        job="release_escrows",
        trigger=Trigger.ADMIN,
        as_of=timezone.now(),
        status=RunStatus.RUNNING,
        started_at=timezone.now(),
        attempt_count=1,
    )


def test_a_queued_run_is_cancelled_at_once_and_says_by_whom_and_why():
    run = queued_run()
    client = logged_in(CANCEL)
    assert "Cancel run</button>" in run_page(client, run)

    # when the operator cancels it with a reason
    response = cancel(client, run.pk, reason="wrong params")

    # then it is cancelled, audited, and its page says who did it and why
    assert response["Location"] == reverse("dashboard-run", args=[run.pk])
    assert messages_of(response) == [f"Run #{run.pk} cancelled."]
    run.refresh_from_db()
    user = response.wsgi_request.user.username
    assert (run.status, run.cancel_requested_by, run.cancel_reason) == (
        RunStatus.CANCELLED,
        user,
        "wrong params",
    )
    entry = ControlAction.objects.get()
    assert (entry.action, entry.target, entry.actor) == (
        ControlAction.Action.RUN_CANCELLED,
        f"#{run.pk} expire_matches",
        user,
    )
    page = run_page(client, run)
    assert '<span class="badge status-cancelled">cancelled</span>' in page
    assert "<dt>Cancelled</dt>" in page and f"by {user} at " in page and ": wrong params" in page
    assert "Cancel run</button>" not in page and ">stopping</span>" not in page
    assert ".badge.status-cancelled {" in page  # coloured


def test_a_running_run_is_asked_to_stop_and_shows_stopping():
    run = running_run()
    client = logged_in(CANCEL)

    response = cancel(client, run.pk, reason="too slow")

    # then it keeps running until its next batch boundary, and its page says it is stopping
    assert messages_of(response) == [
        f"Run #{run.pk} is stopping: it ends at its next batch boundary."
    ]
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.cancel_requested_at is not None
    page = run_page(client, run)
    assert '<span class="badge stopping">stopping</span>' in page
    assert "<dt>Stopping</dt>" in page and ": too slow" in page
    assert "Cancel run</button>" not in page  # asked once already
    row = client.get(DASHBOARD).content.decode()
    row = row[row.index(f'data-run="{run.pk}"') :].split("</tr>", 1)[0]
    assert ">stopping</span>" in row


def test_cancelling_needs_its_permission():
    run = queued_run()
    client = logged_in(TRIGGER)

    assert "Cancel run</button>" not in run_page(client, run)
    response = cancel(client, run.pk)

    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED and run.cancel_requested_at is None
    assert not ControlAction.objects.exists()


def test_a_finished_run_is_not_cancelled_and_an_unknown_one_is_a_404():
    run = finished_run()
    client = logged_in(CANCEL)
    assert "Cancel run</button>" not in run_page(client, run)

    response = cancel(client, run.pk)

    assert response["Location"] == reverse("dashboard-run", args=[run.pk])
    assert messages_of(response) == [
        f"Run #{run.pk} was not cancelled: run #{run.pk} is already succeeded; only a queued, "
        "running or waiting run can be cancelled."
    ]
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.cancel_requested_at is None
    assert cancel(client, run.pk + 100).status_code == 404
    assert not ControlAction.objects.exists()


def test_a_too_long_reason_cancels_nothing():
    run = queued_run()

    response = cancel(logged_in(CANCEL), run.pk, reason="x" * 501)

    assert messages_of(response)[0].startswith(
        f"Run #{run.pk} was not cancelled: A reason is at most 500 characters"
    )
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert not ControlAction.objects.exists()


@pytest.mark.parametrize("urgent", [True, False])
def test_run_now_can_ask_for_the_urgent_lane(urgent):
    client = logged_in(TRIGGER)
    assert 'name="urgent"' in client.get(DASHBOARD).content.decode()

    data = {"action": "run", "reason": "customer waiting"} | ({"urgent": "on"} if urgent else {})
    response = client.post(reverse("dashboard-job-action", args=["release_escrows"]), data)

    run = JobRun.objects.get()
    assert run.urgent is urgent
    lane = " on the urgent lane" if urgent else ""
    assert messages_of(response) == [f"Run now of release_escrows queued as run #{run.pk}{lane}."]
    page = run_page(client, run)
    assert ('<span class="badge urgent"' in page) is urgent
    assert ("<dt>Lane</dt><dd>urgent" in page) is urgent


def test_the_urgent_box_shows_only_to_whoever_may_trigger():
    assert 'name="urgent"' not in logged_in().get(DASHBOARD).content.decode()


def test_a_queued_run_of_a_paused_queue_says_why_it_has_not_started():
    # given a queued run, then its queue paused
    run = queued_run()
    client = logged_in()
    assert 'id="held-back"' not in run_page(client, run)
    queue_pause(queue="default", by="ops")

    # then its page says it waits for the queue to be resumed
    assert "not started yet: the default queue is paused" in run_page(client, run)
