"""A job's page: its trends over the last 30 days (duration, wait, items processed per day) as
server-rendered SVG."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs.dashboard.trends import items_processed, job_trend_days
from jobs.models import JobRunAttempt, RunStatus
from jobs.registry import get_job
from tests.api.helpers import finished_run, user_with

pytestmark = pytest.mark.django_db


def run_days_ago(days: int, *, duration_ms: int, wait_ms: int, released: int, **fields):
    run = finished_run(
        "release_escrows",
        duration_ms=duration_ms,
        ago=timedelta(days=days),
        summary={"escrows_released": released, "escrows_failed": 1, "amount_released": 99_999},
        **fields,
    )
    JobRunAttempt.objects.filter(run=run).update(wait_ms=wait_ms)
    return run


def page_of(job: str) -> str:
    client = Client()
    client.force_login(user_with())
    return client.get(reverse("dashboard-job", args=[job])).content.decode()


def test_a_jobs_page_charts_its_duration_wait_and_items_per_day():
    # given release_escrows runs over three days of the last thirty, and one older
    today = timezone.localdate()
    run_days_ago(3, duration_ms=1_000, wait_ms=200, released=10)
    run_days_ago(3, duration_ms=3_000, wait_ms=400, released=20)
    run_days_ago(1, duration_ms=5_000, wait_ms=1_000, released=5)
    run_days_ago(0, duration_ms=2_000, wait_ms=50, released=7)
    run_days_ago(40, duration_ms=90_000, wait_ms=9_000, released=1_000)
    # and a dry run, which changed nothing and is left out (its message's wait counts: it
    # waited in the same queue)
    run_days_ago(1, duration_ms=60_000, wait_ms=1_000, released=500, dry_run=True)

    # when an operator opens the job's page
    page = page_of("release_escrows")

    # then three charts show one bar a day, the median and the 95th percentile
    trends = re.search(r'<section id="trends">.*?</section>', page, re.DOTALL).group(0)
    charts = dict(re.findall(r'data-trend="([^"]+)">(.*?)</svg>', trends, re.DOTALL))
    assert set(charts) == {"Duration", "Wait for a worker", "Items processed"}
    three_days_ago = (today - timedelta(days=3)).isoformat()
    duration = charts["Duration"]
    assert f"<title>{three_days_ago}: p50 2.0 s, 2 runs</title>" in duration
    assert f"<title>{three_days_ago}: p95 2.9 s</title>" in duration
    assert "up to 5.0 s a day" in duration  # the 90-second run is older than 30 days
    assert len(re.findall(r'class="trend-p50"', duration)) == 3
    assert f"<title>{three_days_ago}: p50 300 ms, 2 runs</title>" in charts["Wait for a worker"]
    # items: escrows released and failed, the money left out
    items = charts["Items processed"]
    assert f"<title>{three_days_ago}: 32 items, 2 runs</title>" in items
    assert f"<title>{today.isoformat()}: 8 items, 1 run</title>" in items
    assert "<script" not in trends and "http" not in trends
    # and the figures per day are in a table underneath
    yesterday = re.search(
        rf'<tr data-day="{(today - timedelta(days=1)).isoformat()}">.*?</tr>', page, re.DOTALL
    ).group(0)
    assert re.findall(r'<td class="num">([^<]*)</td>', yesterday) == [
        "1",
        "5.0 s / 5.0 s",
        "1.0 s / 1.0 s",
        "6",
    ]


def test_the_trend_covers_thirty_days_oldest_first_with_empty_days_empty():
    finished_run("release_escrows", ago=timedelta(days=2), duration_ms=700)

    trend = job_trend_days(get_job("release_escrows"))

    assert len(trend) == 30
    assert trend[-1].day == timezone.localdate()
    assert [day.runs for day in trend[-3:]] == [1, 0, 0]
    assert trend[-3].duration_p50_ms == 700 and trend[-1].duration_p50_ms is None


def test_items_are_the_work_keys_when_a_job_names_them():
    lag = get_job("monitor_business_lag")  # work key: "lagging", a flag
    release = get_job("release_escrows")
    summary = {"escrows_released": 4, "escrows_failed": 2, "amount_released": 500, "dry_run": True}

    assert items_processed({"lagging": True, "overdue_count": 9}, lag) == 1
    assert items_processed({"lagging": False, "overdue_count": 9}, lag) == 0
    assert items_processed(summary, release) == 6  # the money and the flag left out
    assert items_processed(["not", "a", "summary"], release) == 0


def test_the_index_links_each_job_to_its_page():
    client = Client()
    client.force_login(user_with())

    page = client.get(reverse("dashboard")).content.decode()

    assert 'href="/dashboard/jobs/release_escrows/"' in page


def test_a_job_with_only_skipped_runs_has_empty_charts():
    finished_run("release_escrows", status=RunStatus.SKIPPED)

    page = page_of("release_escrows")

    assert page.count("no data in the last 30 days") == 3
    assert 'class="trend-p50"' not in page
