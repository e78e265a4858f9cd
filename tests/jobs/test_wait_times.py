"""Wait times: each attempt records how long its message waited; job statistics give the
p50/p95 of their runs' waits, `queue_wait_stats` each queue's, and /metrics a histogram."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import JobRun, JobRunAttempt
from jobs.run_selectors import queue_wait_stats
from jobs.runner import job_run_execute
from jobs.selectors import job_overview, job_stats
from jobs.services import job_run_request
from tests.api.helpers import finished_run

pytestmark = pytest.mark.django_db


def _waited(run: JobRun, wait_ms: int) -> None:
    attempt = run.attempts.get()
    JobRunAttempt.objects.filter(pk=attempt.pk).update(
        queued_at=attempt.started_at - timedelta(milliseconds=wait_ms), wait_ms=wait_ms
    )


def test_the_runner_records_when_a_message_was_sent_and_how_long_it_waited():
    # given a run whose message was sent 2 s ago
    run = job_run_request(job="cleanup", trigger="cli", enqueue=False)
    sent = timezone.now() - timedelta(seconds=2)

    # when a worker starts it
    job_run_execute(run_id=run.pk, queued_at=sent)

    # then its attempt says when it was sent and that it waited about 2 s
    attempt = JobRunAttempt.objects.get(run=run)
    assert attempt.queued_at == sent
    assert 2_000 <= attempt.wait_ms < 10_000


def test_job_statistics_give_the_median_and_95th_percentile_wait():
    # given five runs of a job that waited 100 to 500 ms, and one that recorded no wait
    for wait in (100, 200, 300, 400, 500):
        _waited(finished_run("release_escrows"), wait)
    finished_run("release_escrows")

    # when its statistics are read, alone or in its overview
    stats = job_stats(job="release_escrows")

    # then the waits interpolate like percentile_cont; the run without one is left out
    assert (stats.wait_p50_ms, stats.wait_p95_ms) == (300, 480)
    assert job_overview(job="release_escrows").stats == stats
    assert job_stats(job="expire_matches").wait_p50_ms is None


def test_each_queue_gives_its_jobs_waits_and_durations():
    # given waits of two jobs on the money queue and one on another queue
    for job, wait, duration in (
        ("release_escrows", 100, 1_000),
        ("finalize_prize_pools", 300, 1_000),
        ("release_escrows", 500, 3_000),
        ("expire_matches", 9_000, 100),
    ):
        _waited(finished_run(job, duration_ms=duration), wait)

    # when the queues' wait statistics are read
    by_queue = {stats.queue: stats for stats in queue_wait_stats()}

    # then the queue carrying both jobs counts their three attempts, and only theirs
    money = by_queue["money"]
    assert money.jobs == ("finalize_prize_pools", "release_escrows")
    assert (money.wait.sample_size, money.wait.p50_ms, money.wait.p95_ms) == (3, 300, 480)
    assert (money.duration.p50_ms, money.duration.p95_ms) == (1_000, 2_800)
    other = next(stats for stats in by_queue.values() if "expire_matches" in stats.jobs)
    assert (other.wait.sample_size, other.wait.p50_ms) == (1, 9_000)


def test_the_wait_histogram_is_exported_by_job_and_queue(client, settings):
    # given two waits of release_escrows, one of 0.2 s and one of 7 s
    settings.STEWARD_METRICS_PUBLIC = True
    _waited(finished_run("release_escrows"), 200)
    _waited(finished_run("release_escrows"), 7_000)

    # when /metrics is scraped
    text = client.get("/metrics").content.decode()

    # then the histogram counts them in its buckets, labelled by job and queue
    lines = [line for line in text.splitlines() if line.startswith("steward_job_run_wait_seconds")]
    assert any('le="0.5"' in line and line.endswith(" 1.0") for line in lines), lines
    assert any('le="15"' in line and line.endswith(" 2.0") for line in lines), lines
    count = next(line for line in lines if line.startswith("steward_job_run_wait_seconds_count"))
    assert 'job="release_escrows"' in count and 'queue="' in count
    assert count.endswith(" 2.0")
    total = next(line for line in lines if line.startswith("steward_job_run_wait_seconds_sum"))
    assert total.endswith(" 7.2")
