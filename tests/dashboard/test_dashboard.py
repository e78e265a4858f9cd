"""The operators' dashboard and run page, rendered by the server."""

import re
from datetime import timedelta

import dramatiq
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs.models import JobRun, JobState, RunStatus, Trigger
from jobs.registry import all_jobs
from tests.api.helpers import PAUSE, RETRY, TRIGGER, finished_run, user_with
from tests.factories import HOLD, donation_at

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("dashboard")
EXTERNAL_URL = re.compile(r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)


def logged_in(*perms) -> Client:
    client = Client()
    client.force_login(user_with(*perms))
    return client


def job_action(client, job, action, reason=""):
    return client.post(
        reverse("dashboard-job-action", args=[job]), {"action": action, "reason": reason}
    )


def test_only_staff_see_the_dashboard():
    anonymous = Client().get(DASHBOARD)
    not_staff = Client()
    not_staff.force_login(user_with(staff=False))

    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/")
    assert not_staff.get(DASHBOARD).status_code == 302


def test_the_dashboard_shows_jobs_queues_failures_and_business_lag(broker):
    # given run history, a failure with markup in its traceback, and two overdue escrows
    for duration in (120, 80):
        finished_run("release_escrows", duration_ms=duration)
    finished_run(
        "expire_matches",
        status=RunStatus.FAILED,
        error="RuntimeError: <img src=x>",
        traceback="Traceback\n<script>alert(1)</script>",
    )
    now = timezone.now()
    donation_at(at=now - HOLD - timedelta(hours=3), amount=4_000)
    donation_at(at=now - HOLD - timedelta(minutes=30), amount=6_000)
    JobState.objects.create(job="cycle_reminders", paused=True, changed_by="ops")

    # when an operator opens the dashboard
    response = logged_in().get(DASHBOARD)

    # then every job is there with its schedule in words, next run, outcome and stats
    assert response.status_code == 200
    page = response.content.decode()
    for spec in all_jobs():
        assert f'data-job="{spec.name}"' in page
    assert "every hour at :00" in page
    assert "every day at 09:00" in page
    assert "paused by ops" in page
    assert "100.00%" in page
    assert "100 / 118 ms" in page  # p50 / p95 of 80 and 120
    # a chart of recent durations, one bar per run
    assert page.count('class="bar-succeeded"') == 2
    assert 'class="bar-failed"' in page
    # queue depths, the failure with its error escaped, and the escrow lag
    assert 'data-queue="money"' in page
    assert "RuntimeError: &lt;img src=x&gt;" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)</script>" not in page
    lag = response.context["lag"]
    figures = {figure.label: figure.value for figure in lag.figures}
    assert figures["escrows overdue for release"] == "2"
    assert figures["waiting for release"] == "₦100.00"
    assert "3 h" in figures["oldest overdue by"]
    # it refreshes itself and loads nothing from elsewhere
    assert 'http-equiv="refresh" content="15"' in page
    assert "window.location.replace" in page
    assert not EXTERNAL_URL.search(page)


def test_buttons_are_shown_only_with_their_permissions():
    without = logged_in().get(DASHBOARD).content.decode()
    trigger_only = logged_in(TRIGGER).get(DASHBOARD).content.decode()

    assert 'value="dry_run"' not in without and 'value="pause"' not in without
    assert 'value="dry_run"' in trigger_only and 'value="pause"' not in trigger_only


@pytest.mark.parametrize("action", ["run", "dry_run"])
def test_run_now_and_dry_run_queue_a_run_as_the_operator(action):
    client = logged_in(TRIGGER)

    response = job_action(client, "release_escrows", action, reason="customer waiting")

    assert response.status_code == 302
    assert response["Location"] == DASHBOARD
    run = JobRun.objects.get()
    assert (run.job, run.trigger, run.dry_run) == (
        "release_escrows",
        Trigger.ADMIN,
        action == "dry_run",
    )
    assert run.reason == "customer waiting"
    label = "Dry run" if action == "dry_run" else "Run now"
    messages = [str(m) for m in client.get(DASHBOARD).context["messages"]]
    assert messages == [f"{label} of release_escrows queued as run #{run.pk}."]


def test_a_button_without_a_reason_records_where_it_came_from():
    job_action(logged_in(TRIGGER), "release_escrows", "dry_run")
    assert JobRun.objects.get().reason == "Dry run from the dashboard"


def test_pause_and_resume_from_the_dashboard():
    client = logged_in(PAUSE)

    job_action(client, "expire_matches", "pause", reason="incident 7")
    state = JobState.objects.get(job="expire_matches")
    assert state.paused and state.change_reason == "incident 7"

    job_action(client, "expire_matches", "resume")
    state.refresh_from_db()
    assert not state.paused


@pytest.mark.parametrize(
    ("action", "perm"),
    [("run", TRIGGER), ("dry_run", TRIGGER), ("pause", PAUSE), ("resume", PAUSE)],
)
def test_buttons_are_refused_without_their_permission(action, perm):
    client = logged_in(*({TRIGGER, PAUSE, RETRY} - {perm}))

    response = job_action(client, "release_escrows", action)

    assert response.status_code == 403
    assert not JobRun.objects.exists()
    assert not JobState.objects.filter(paused=True).exists()


def test_buttons_need_the_csrf_token():
    client = Client(enforce_csrf_checks=True)
    client.force_login(user_with(TRIGGER))

    response = job_action(client, "release_escrows", "run")

    assert response.status_code == 403
    assert not JobRun.objects.exists()


def test_unknown_jobs_and_actions_are_refused():
    client = logged_in(TRIGGER, PAUSE)
    assert job_action(client, "nope", "run").status_code == 404
    assert job_action(client, "release_escrows", "explode").status_code == 302
    assert client.get(reverse("dashboard-job-action", args=["release_escrows"])).status_code == 405
    assert not JobRun.objects.exists()


def test_the_run_page_shows_summary_attempts_and_the_escaped_error():
    run = finished_run(
        status=RunStatus.FAILED,
        summary={"matches_expired": 3},
        error="KeyError: '<x>'",
        traceback="Traceback\nKeyError: '<x>'",
    )

    response = logged_in().get(reverse("dashboard-run", args=[run.pk]))

    assert response.status_code == 200
    page = response.content.decode()
    assert "&quot;matches_expired&quot;: 3" in page
    assert "KeyError: &#x27;&lt;x&gt;&#x27;" in page
    assert "test:1" in page
    assert "Retry</button>" not in page  # no permission
    assert logged_in().get(reverse("dashboard-run", args=[run.pk + 100])).status_code == 404


def test_retrying_from_the_run_page():
    failed = finished_run(status=RunStatus.FAILED)
    client = logged_in(RETRY)
    assert (
        "Retry</button>" in client.get(reverse("dashboard-run", args=[failed.pk])).content.decode()
    )

    response = client.post(reverse("dashboard-run-retry", args=[failed.pk]), {"reason": "fixed"})

    retry = JobRun.objects.get(retry_of=failed)
    assert response["Location"] == reverse("dashboard-run", args=[retry.pk])
    assert (retry.trigger, retry.reason) == (Trigger.RETRY, "fixed")
    assert client.post(reverse("dashboard-run-retry", args=[retry.pk])).status_code == 302
    assert JobRun.objects.filter(retry_of=retry).count() == 0


def test_the_dashboard_still_renders_when_the_broker_is_down(monkeypatch):
    # given a broker whose Redis does not answer
    broker = dramatiq.get_broker()
    monkeypatch.setattr(broker, "client", broker.client.__class__(host="127.0.0.1", port=1))

    # when the dashboard is opened
    response = logged_in().get(DASHBOARD)

    # then it shows everything else and says what is wrong
    assert response.status_code == 200
    assert "The broker does not answer" in response.content.decode()
