"""The operators' dashboard and run page, rendered by the server."""

import re
from datetime import timedelta

import dramatiq
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs.models import JobRun, JobState, RunStatus, Schedule, Trigger
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


def scheduled_run(job: str) -> JobRun:
    """A finished run of the job's default schedule (made on migrate)."""
    run = finished_run(job)
    JobRun.objects.filter(pk=run.pk).update(schedule=Schedule.objects.get(name=job))
    return run


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
    assert "100 ms / 118 ms" in page  # p50 / p95 of 80 and 120
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


def test_summaries_are_labelled_figures_with_money_in_naira():
    run = finished_run(
        "release_escrows", summary={"escrows_released": 1_204, "amount_released": 1_030_700}
    )

    page = logged_in().get(DASHBOARD).content.decode()
    row = page[page.index(f'data-run="{run.pk}"') :]

    assert "Amount released <strong>₦10,307.00</strong>" in row
    assert "Escrows released <strong>1,204</strong>" in row
    assert "amount_released" not in row
    assert "1030700" not in page


def test_dry_runs_are_marked_and_left_out_of_recent_failures():
    failed = finished_run("release_escrows", status=RunStatus.FAILED, error="real failure")
    dry = finished_run(
        "release_escrows",
        status=RunStatus.FAILED,
        dry_run=True,
        error="dry failure",
        summary={"dry_run": True, "escrows_released": 2},
    )

    response = logged_in().get(DASHBOARD)

    assert [row["run"].pk for row in response.context["failures"]] == [failed.pk]
    page = response.content.decode()
    dry_row = page[page.index(f'data-run="{dry.pk}"') :].split("</tr>", 1)[0]
    assert '<span class="badge dry-run"' in dry_row and ">dry run</span>" in dry_row
    assert "Dry run" not in dry_row.split("Escrows released", 1)[1]  # no dry_run figure
    failures = page[page.index('id="failures"') :]
    assert "dry failure" not in failures and "real failure" in failures


@pytest.mark.parametrize(
    ("overdue", "alarming"), [(timedelta(minutes=30), False), (timedelta(hours=3), True)]
)
def test_the_lag_panel_is_highlighted_only_past_the_alert_threshold(settings, overdue, alarming):
    settings.ESCROW_LAG_ALERT_MINUTES = 120
    donation_at(at=timezone.now() - HOLD - overdue, amount=4_000)

    response = logged_in().get(DASHBOARD)

    assert response.context["lag"].alarming is alarming
    page = response.content.decode()
    assert ('<section id="lag" class="alarming"' in page) is alarming
    assert ("Past the alert threshold" in page) is alarming
    assert "section.alarming" in page  # styled
    figures = {figure.label: figure.value for figure in response.context["lag"].figures}
    assert figures["alert threshold"] == "2 h"


def test_cron_codes_are_never_wrapped():
    page = logged_in().get(DASHBOARD).content.decode()

    assert '<code class="cron">0 */6 * * *</code>' in page
    assert "code.cron { white-space: nowrap; }" in page


def test_a_reason_is_at_most_500_characters():
    client = logged_in(TRIGGER, RETRY)
    failed = finished_run(status=RunStatus.FAILED)

    too_long = job_action(client, "release_escrows", "dry_run", reason="x" * 501)
    retried = client.post(reverse("dashboard-run-retry", args=[failed.pk]), {"reason": "y" * 501})
    fits = job_action(client, "release_escrows", "dry_run", reason="x" * 500)

    assert too_long.status_code == retried.status_code == fits.status_code == 302
    assert retried["Location"] == reverse("dashboard-run", args=[failed.pk])
    assert JobRun.objects.filter(reason="x" * 500).count() == 1
    assert JobRun.objects.count() == 2  # the failed run and the one that fits
    messages = [str(m) for m in client.get(DASHBOARD).context["messages"]]
    assert messages[0] == (
        "Dry run of release_escrows was not done: A reason is at most 500 characters; "
        "this one has 501. Shorten it and try again."
    )
    assert messages[1].startswith(f"Run #{failed.pk} was not retried: A reason is at most 500")
    assert 'maxlength="500"' in client.get(DASHBOARD).content.decode()


def test_the_run_page_shows_the_summary_as_figures_and_the_json_folded():
    run = finished_run(
        "release_escrows",
        dry_run=True,
        summary={"dry_run": True, "escrows_released": 2, "amount_released": 10_000},
    )

    page = logged_in().get(reverse("dashboard-run", args=[run.pk])).content.decode()

    assert "<strong>₦100.00</strong> Amount released" in page
    assert "<strong>2</strong> Escrows released" in page
    assert '<span class="badge dry-run">dry run</span>' in page
    assert '<details class="small"><summary>Full summary (JSON)</summary>' in page


def test_the_overviews_read_every_job_in_a_fixed_number_of_queries(django_assert_num_queries):
    from jobs.selectors import _overview_rows, job_overview, job_overviews

    for job in ("release_escrows", "expire_matches", "cleanup"):
        for status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.SKIPPED):
            finished_run(job, status=status)
    finished_run("cleanup", dry_run=True)  # the latest run, not counted in the stats
    scheduled_run("expire_matches")
    jobs = tuple(spec.name for spec in all_jobs())

    # states, every job's runs, the runs shown in full, the schedules, their last runs
    with django_assert_num_queries(5):
        overviews = {overview.name: overview for overview in job_overviews()}

    # PostgreSQL's LATERAL statement and the UNION ALL one of other databases agree
    assert _overview_rows(jobs, lateral=True) == _overview_rows(jobs, lateral=False)
    cleanup = overviews["cleanup"]
    assert cleanup.last_run.dry_run and not cleanup.last_finished_run.dry_run
    assert (cleanup.stats.sample_size, cleanup.stats.succeeded, cleanup.stats.failed) == (3, 1, 1)
    assert [point.status for point in cleanup.recent_finished] == ["skipped", "failed", "succeeded"]
    assert overviews["rotate_featured"].last_run is None
    assert overviews["rotate_featured"].stats.sample_size == 0
    assert job_overview(job="cleanup").stats == cleanup.stats


def test_the_dashboard_reads_the_database_a_handful_of_times(django_assert_max_num_queries):
    for job in ("release_escrows", "expire_matches"):
        finished_run(job, summary={"rows": 3})
        scheduled_run(job)
    client = logged_in()

    # the session, the user and their two permission reads; the job overviews (five, with
    # the schedules and their last runs), the lag, the failures and the recent runs; the
    # queues' controls (five: the audit's latest id, queue states, rate limits, the drain, the
    # run-time concurrencies), the rate limits and the drain; the queues' waits (one a queue:
    # default, money, notifications); the workers and the runs they execute; the domain trends
    # (the ledger's money held, from its snapshots)
    with django_assert_max_num_queries(25):
        assert client.get(DASHBOARD).status_code == 200


def test_durations_read_in_the_unit_that_fits():
    finished_run("deliver_notifications", duration_ms=12_345)
    finished_run("expire_matches", duration_ms=842)

    page = logged_in().get(DASHBOARD).content.decode()

    assert "12 s / 12 s" in page and "842 ms / 842 ms" in page
    assert "12,345 ms" not in page
