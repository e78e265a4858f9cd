"""A job's page on the dashboard: its statistics, its trends over the last 30 days (duration,
wait, items processed, per day) and its recent runs, those under way with their progress."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from jobs.conf import conf
from jobs.dashboard.live import live_progress_bars
from jobs.dashboard.trends import (
    TREND_DAYS,
    TREND_HEIGHT,
    TREND_WIDTH,
    job_trend_charts,
    job_trend_days,
)
from jobs.exceptions import UnknownJob
from jobs.params import params_text
from jobs.registry import get_job
from jobs.selectors import job_overview, job_recent_runs

RECENT_RUNS_SHOWN = 20


@staff_member_required
@require_GET
def job_detail(request: HttpRequest, name: str) -> HttpResponse:
    try:
        spec = get_job(name)
    except UnknownJob as exc:
        raise Http404(str(exc)) from None
    now = timezone.now()
    trend = job_trend_days(spec, now=now)
    runs = job_recent_runs(job=name, limit=RECENT_RUNS_SHOWN)
    progress = live_progress_bars(runs)
    context = {
        "spec": spec,
        "job": job_overview(job=name, now=now),
        "trend": trend,
        "charts": job_trend_charts(trend),
        "trend_days": TREND_DAYS,
        "trend_width": TREND_WIDTH,
        "trend_height": TREND_HEIGHT,
        "recent_runs": [
            {"run": run, "params": params_text(run.params), "progress": progress.get(run.pk)}
            for run in runs
        ],
        "refresh_seconds": conf.DASHBOARD_REFRESH_SECONDS,
        "now": now,
    }
    return render(request, "dashboard/job_detail.html", context)
