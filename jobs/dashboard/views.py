"""The operators' dashboard: one server-rendered page that refreshes itself, and run details.

Charts are inline SVG computed here; nothing is fetched from anywhere else. Buttons post to
the same services as the API and the admin, with the same permissions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from html import escape

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_POST
from redis.exceptions import RedisError

from jobs.conf import conf
from jobs.dashboard.forms import REASON_MAX_LENGTH, reason_or_error
from jobs.exceptions import (
    PAUSE_PERMISSION,
    RETRY_PERMISSION,
    TRIGGER_PERMISSION,
    RunNotRetryable,
    UnknownJob,
)
from jobs.models import JobRun, RunStatus, Trigger
from jobs.panels import run_summary_figures
from jobs.queues import queue_stats
from jobs.registry import get_job
from jobs.scheduling import job_pause, job_resume
from jobs.selectors import (
    RunPoint,
    job_overviews,
    job_recent_failures,
    job_run_get,
    job_run_list,
)
from jobs.services import job_run_request

logger = logging.getLogger("steward.dashboard")

CHART_RUNS = 30
CHART_WIDTH = 240
CHART_HEIGHT = 48
ACTIONS = {
    "run": ("Run now", TRIGGER_PERMISSION),
    "dry_run": ("Dry run", TRIGGER_PERMISSION),
    "pause": ("Pause", PAUSE_PERMISSION),
    "resume": ("Resume", PAUSE_PERMISSION),
}


@dataclasses.dataclass(slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    status: str
    title: str


def duration_chart(runs: Sequence[RunPoint | JobRun]) -> list[Bar]:
    """Bars of the runs' durations, oldest on the left, coloured by outcome in the template.
    Runs without a duration (skipped) get a short stub so they still show."""
    if not runs:
        return []
    longest = max((run.duration_ms or 0 for run in runs), default=0) or 1
    slot = CHART_WIDTH / CHART_RUNS
    width = round(slot - 2, 1)
    scale = (CHART_HEIGHT - 2) / longest
    bars = []
    for index, run in enumerate(reversed(runs)):
        height = round(max(2.0, (run.duration_ms or 0) * scale), 1)
        duration = f"{run.duration_ms:,} ms" if run.duration_ms is not None else "no duration"
        bars.append(
            Bar(
                x=round(index * slot + 1, 1),
                y=round(CHART_HEIGHT - height, 1),
                width=width,
                height=height,
                status=run.status,
                title=f"#{run.pk} {run.status}, {duration}",
            )
        )
    return bars


def chart_markup(bars: list[Bar]) -> SafeString:
    """The bars as SVG rectangles, built here rather than in the template (a dashboard has
    hundreds of them, and the template language is slow at that many values)."""
    return mark_safe(  # numbers, and the texts escaped here
        "".join(
            [
                f'<rect class="bar-{escape(bar.status)}" x="{bar.x}" y="{bar.y}" '
                f'width="{bar.width}" height="{bar.height}"><title>{escape(bar.title)}</title>'
                "</rect>"
                for bar in bars
            ]
        )
    )


def _queues() -> tuple[list, str]:
    try:
        return queue_stats(), ""
    except RedisError as exc:
        logger.warning("Dashboard could not read queue statistics: %s", exc)
        return [], f"The broker does not answer ({exc})."


@staff_member_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    jobs = [
        {
            "overview": overview,
            "chart": chart_markup(duration_chart(overview.recent_finished[:CHART_RUNS])),
        }
        for overview in job_overviews(now=now)
    ]
    queues, queue_error = _queues()
    lag = import_string(conf.DASHBOARD_LAG)(as_of=now) if conf.DASHBOARD_LAG else None
    context = {
        "jobs": jobs,
        "queues": queues,
        "queue_error": queue_error,
        "failures": job_recent_failures(limit=10),
        "recent_runs": [
            {"run": run, "figures": run_summary_figures(run)} for run in job_run_list(limit=15)
        ],
        "lag": lag,
        "refresh_seconds": conf.DASHBOARD_REFRESH_SECONDS,
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
        "time_zone": settings.TIME_ZONE,
        "can_trigger": request.user.has_perm(TRIGGER_PERMISSION),
        "can_pause": request.user.has_perm(PAUSE_PERMISSION),
        "reason_max_length": REASON_MAX_LENGTH,
        "now": now,
    }
    return render(request, "dashboard/index.html", context)


@staff_member_required
@require_POST
def job_action(request: HttpRequest, name: str) -> HttpResponse:
    try:
        get_job(name)
    except UnknownJob as exc:
        raise Http404(str(exc)) from None
    action = request.POST.get("action", "")
    if action not in ACTIONS:
        messages.error(request, f"Unknown action {action!r}.")
        return redirect("dashboard")
    label, permission = ACTIONS[action]
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"{label} needs the {permission} permission.")
    reason, error = reason_or_error(request.POST, default=f"{label} from the dashboard")
    if error:
        messages.error(request, f"{label} of {name} was not done: {error}")
        return redirect("dashboard")
    by = request.user.get_username()
    if action in ("run", "dry_run"):
        run = job_run_request(
            job=name,
            trigger=Trigger.ADMIN,
            requested_by=by,
            reason=reason,
            dry_run=action == "dry_run",
        )
        messages.success(request, f"{label} of {name} queued as run #{run.pk}.")
    else:
        service = job_pause if action == "pause" else job_resume
        service(job=name, by=by, reason=reason)
        messages.success(request, f"{name} {'paused' if action == 'pause' else 'resumed'}.")
    return redirect("dashboard")


@staff_member_required
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    try:
        run = job_run_get(run_id=run_id)
    except JobRun.DoesNotExist:
        raise Http404(f"no run #{run_id}") from None
    context = {
        "run": run,
        "figures": run_summary_figures(run, detail=True),
        "summary_json": json.dumps(run.summary, indent=2, sort_keys=True, default=str),
        "reason_max_length": REASON_MAX_LENGTH,
        "can_retry": run.status == RunStatus.FAILED and request.user.has_perm(RETRY_PERMISSION),
        "retries": run.retries.order_by("id"),
        "refresh_seconds": 0 if run.is_finished else conf.DASHBOARD_REFRESH_SECONDS,
    }
    return render(request, "dashboard/run_detail.html", context)


@staff_member_required
@require_POST
def run_retry(request: HttpRequest, run_id: int) -> HttpResponse:
    if not request.user.has_perm(RETRY_PERMISSION):
        raise PermissionDenied(f"Retrying needs the {RETRY_PERMISSION} permission.")
    try:
        failed = job_run_get(run_id=run_id)
    except JobRun.DoesNotExist:
        raise Http404(f"no run #{run_id}") from None
    reason, error = reason_or_error(request.POST, default="Retry from the dashboard")
    if error:
        messages.error(request, f"Run #{run_id} was not retried: {error}")
        return redirect("dashboard-run", run_id=run_id)
    try:
        retry = job_run_request(
            job=failed.job,
            trigger=Trigger.RETRY,
            retry_of=failed,
            requested_by=request.user.get_username(),
            reason=reason,
        )
    except RunNotRetryable as exc:
        messages.error(request, str(exc))
        return redirect("dashboard-run", run_id=run_id)
    messages.success(request, f"Run #{run_id} retried as run #{retry.pk}.")
    return redirect("dashboard-run", run_id=retry.pk)
