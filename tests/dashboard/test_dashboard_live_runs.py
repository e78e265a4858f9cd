"""The dashboard's view of work under way: a running run's progress (a fan-out parent's from
its shards), each attempt's own log, the workers with the runs they execute, and wait times."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs.models import AttemptStatus, JobRun, JobRunAttempt, RunStatus, Trigger, WorkerHeartbeat
from tests.api.helpers import finished_run, user_with

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("dashboard")


def logged_in() -> Client:
    client = Client()
    client.force_login(user_with())
    return client


def run_page(run) -> str:
    return logged_in().get(reverse("dashboard-run", args=[run.pk])).content.decode()


def section(page: str, name: str) -> str:
    match = re.search(rf'<section id="{name}".*?</section>', page, re.DOTALL)
    assert match, f"no #{name} section"
    return match.group(0)


def running_run(job="release_escrows", *, progress=None, status=RunStatus.RUNNING, **fields):
    now = timezone.now()
    run = JobRun.objects.create(
        job=job,
        trigger=Trigger.ADMIN,
        as_of=now,
        status=status,
        started_at=now - timedelta(seconds=30),
        attempt_count=1,
        progress=progress or {},
        **fields,
    )
    JobRunAttempt.objects.create(run=run, number=1, started_at=run.started_at, worker="host-a:4242")
    return run


def progress_of(done, total, *, batches=1, per_second=None, seconds_left=None) -> dict:
    return {
        "done": done,
        "total": total,
        "what": "escrows",
        "batches": batches,
        "per_second": per_second,
        "seconds_left": seconds_left,
        "at": timezone.now().isoformat(),
    }


def test_the_pages_render_with_nothing_recorded():
    client = logged_in()

    index = client.get(DASHBOARD)
    job = client.get(reverse("dashboard-job", args=["release_escrows"]))

    assert index.status_code == job.status_code == 200
    assert "No worker or scheduler has beaten yet." in section(index.content.decode(), "workers")
    assert "nothing in 30 days" in job.content.decode()
    assert client.get(reverse("dashboard-job", args=["no_such_job"])).status_code == 404


def test_a_running_run_shows_its_progress_and_refreshes_every_3_seconds():
    # given a run 1,200 escrows into 5,000, at 345.5 a second
    run = running_run(
        progress=progress_of(1_200, 5_000, batches=12, per_second=345.5, seconds_left=11.0)
    )

    # when an operator opens its page
    page = run_page(run)

    # then it shows the bar and the numbers, and refreshes itself every 3 seconds
    progress = section(page, "progress")
    assert 'aria-valuenow="24"' in progress and "width: 24%" in progress
    assert "1,200 / 5,000</strong> escrows" in progress and "(24%)" in progress
    assert "12 batches" in progress
    assert "345.5 a second" in progress
    assert "about 11 s left" in progress
    assert "refreshes every 3 s" in page and "}, 3 * 1000);" in page

    # and the dashboard's recent runs show a small bar for it, the index refreshing as before
    index = logged_in().get(DASHBOARD).content.decode()
    row = re.search(rf'<tr data-run="{run.pk}".*?</tr>', index, re.DOTALL).group(0)
    assert 'class="progress compact"' in row and "1,200 / 5,000" in row
    assert "}, 15 * 1000);" in index


def test_a_queued_run_refreshes_as_the_dashboard_does_and_a_finished_one_not_at_all():
    queued = JobRun.objects.create(
        job="release_escrows", trigger=Trigger.ADMIN, as_of=timezone.now()
    )
    finished = finished_run("release_escrows")

    assert "}, 15 * 1000);" in run_page(queued)
    assert 'id="progress"' not in run_page(queued)
    assert "* 1000);" not in run_page(finished)


def test_a_running_run_that_reported_nothing_yet_says_so():
    page = run_page(running_run())

    assert "No progress reported yet." in section(page, "progress")


def test_a_fan_out_parent_shows_its_shards_combined_progress():
    # given a parent waiting on two shards: one finished its 400, the other 200 into 600
    parent = running_run(status=RunStatus.WAITING)
    running_run(parent=parent, progress=progress_of(400, 400, batches=4))
    JobRun.objects.filter(parent=parent, progress__done=400).update(
        status=RunStatus.SUCCEEDED, finished_at=timezone.now()
    )
    running_run(parent=parent, progress=progress_of(200, 600, batches=2, per_second=50.0))

    # when an operator opens the parent's page
    progress = section(run_page(parent), "progress")

    # then it shows the shards' combined progress
    assert "(its shards' combined)" in progress
    assert "600 / 1,000</strong> escrows" in progress and "(60%)" in progress
    assert "1 of 2 shards finished" in progress
    assert "6 batches" in progress
    assert "about 8 s left" in progress  # 400 left at 50 a second


def test_the_run_page_lists_each_attempts_lines_newest_attempt_first(settings):
    # given a run whose first attempt failed with an error line, and whose second kept only
    # the last 3 lines it logged
    settings.STEWARD_RUN_LOG_LINES = 3
    run = finished_run("release_escrows", status=RunStatus.SUCCEEDED)
    first = run.attempts.get()
    first.status = AttemptStatus.FAILED
    first.log = [
        {"at": "2026-03-01T10:00:00+00:00", "level": "INFO", "line": "Running job: <b>x</b>"},
        {"at": "2026-03-01T10:00:01+00:00", "level": "ERROR", "line": "Batch failed: deadlock"},
    ]
    first.save()
    JobRunAttempt.objects.create(
        run=run,
        number=2,
        status=AttemptStatus.SUCCEEDED,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        log=[
            {"at": "2026-03-01T10:05:00+00:00", "level": "INFO", "line": "Progress: 10/20"},
            {"at": "2026-03-01T10:05:01+00:00", "level": "WARNING", "line": "Slow batch"},
            {"at": "2026-03-01T10:05:02+00:00", "level": "INFO", "line": "Job succeeded"},
        ],
    )

    # when an operator opens its page
    log = section(run_page(run), "log")

    # then the second attempt's lines come first, with a note that earlier ones were cut
    assert log.index('data-attempt-log="2"') < log.index('data-attempt-log="1"')
    second = log[log.index('data-attempt-log="2"') : log.index('data-attempt-log="1"')]
    assert "Only its last 3 lines are kept" in second
    assert "10:05:01" in second and "Slow batch" in second
    assert '<tr class="log-line log-warning">' in second
    # and the first attempt's error line is highlighted, its markup shown as text
    first_log = log[log.index('data-attempt-log="1"') :]
    assert "Only its last" not in first_log
    assert re.search(r'<tr class="log-line log-error">.*?Batch failed: deadlock', first_log, re.S)
    assert "Running job: &lt;b&gt;x&lt;/b&gt;" in first_log


def test_the_workers_section_shows_alive_and_gone_workers_and_points_at_their_runs(settings):
    # given a live worker running one run, a draining one, and a worker killed 5 minutes ago
    # while it was running another
    settings.STEWARD_WORKER_LOST_AFTER = 60
    now = timezone.now()
    running = running_run()
    left = running_run("expire_matches")

    def heartbeat(name, *, seen, attempts=(), draining=False):
        host, pid = name.split(":")
        WorkerHeartbeat.objects.create(
            name=name,
            host=host,
            pid=int(pid),
            queues=["default", "money"],
            threads=2,
            started_at=now - timedelta(hours=1),
            last_seen_at=seen,
            draining=draining,
            attempts=list(attempts),
        )

    heartbeat(
        "host-a:101", seen=now - timedelta(seconds=3), attempts=[{"run": running.pk, "attempt": 1}]
    )
    heartbeat("host-b:202", seen=now - timedelta(seconds=1), draining=True)
    heartbeat(
        "host-c:303", seen=now - timedelta(minutes=5), attempts=[{"run": left.pk, "attempt": 1}]
    )

    # when an operator opens the dashboard
    workers = section(logged_in().get(DASHBOARD).content.decode(), "workers")

    # then every worker is listed with its heartbeat's age and its runs linked
    rows = dict(re.findall(r'<tr data-worker="([^"]+)"(.*?)</tr>', workers, re.DOTALL))
    assert set(rows) == {"host-a:101", "host-b:202", "host-c:303"}
    alive = rows["host-a:101"]
    assert "alive" in alive and "GONE" not in alive
    assert re.search(r"\b[34] s ago", alive)
    assert f'href="/dashboard/runs/{running.pk}/"' in alive and "release_escrows" in alive
    assert "default, money" in alive
    assert "draining" in rows["host-b:202"] and "idle" in rows["host-b:202"]
    # and the killed worker is GONE, pointing at the run it was executing
    gone = rows["host-c:303"]
    assert gone.startswith(' class="worker-gone"')
    assert "GONE" in gone and "5 min ago" in gone
    assert "was running" in gone and f'href="/dashboard/runs/{left.pk}/"' in gone
    assert "expire_matches" in gone


def waited_run(job: str, wait_ms: int) -> JobRun:
    run = finished_run(job)
    JobRunAttempt.objects.filter(run=run).update(wait_ms=wait_ms, queued_at=run.started_at)
    return run


def test_waits_show_per_job_next_to_durations_and_per_queue():
    # given release_escrows runs (money queue) that waited 1 to 3 seconds for a worker
    for wait_ms in (1_000, 2_000, 3_000):
        waited_run("release_escrows", wait_ms)

    # when an operator opens the dashboard
    page = logged_in().get(DASHBOARD).content.decode()

    # then the job's row shows the median and 95th percentile wait under its durations
    row = re.search(r'<tr data-job="release_escrows">.*?</tr>', page, re.DOTALL).group(0)
    assert re.search(r'class="duration".*?100 ms / 100 ms', row, re.DOTALL)
    assert re.search(r'class="wait[^"]*".*?wait 2.0 s / 2.9 s', row, re.DOTALL)
    # and the money queue's row shows them too, a queue with no waits a dash
    queues = section(page, "queues")
    money = re.search(r'data-queue-group="money">.*?</tr>', queues, re.DOTALL).group(0)
    assert "2.0 s / 2.9 s" in money
    notifications = re.search(
        r'data-queue-group="notifications">.*?</tr>', queues, re.DOTALL
    ).group(0)
    assert re.search(r'class="num nowrap wait">—</td>', notifications)


def test_the_run_page_shows_each_attempts_wait():
    run = waited_run("release_escrows", 1_234)

    attempts = section(run_page(run), "attempts")

    assert '<td class="num wait">1.2 s</td>' in attempts
