"""The operators' dashboard: one server-rendered page that refreshes itself.

Jobs are listed with their schedules grouped under them (each schedule's next runs in its own
time zone and in UTC), then the queues, the rate limits, the workers and the recent control
actions (`control_views`); runs under way show their progress (`live`); the domain apps'
trends (`STEWARD_DASHBOARD_TRENDS`) are drawn as charts (`trends`). Charts are inline SVG
computed here; nothing is fetched from anywhere else. Buttons post to the same services as the
API and the admin, with the same permissions; a run's page and its buttons are in `run_views`,
a job's page with its trends in `job_views`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from html import escape

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_POST

from jobs.conf import conf
from jobs.dashboard.control_views import control_sections
from jobs.dashboard.forms import (
    PARAMS_MAX_LENGTH,
    REASON_MAX_LENGTH,
    params_hint,
    params_or_error,
    reason_or_error,
    urgent_asked,
)
from jobs.dashboard.live import live_progress_bars, worker_rows
from jobs.dashboard.trends import TREND_HEIGHT, TREND_WIDTH, domain_trend_charts
from jobs.exceptions import (
    PAUSE_PERMISSION,
    PAUSE_SCHEDULES_PERMISSION,
    TRIGGER_PERMISSION,
    UnknownJob,
)
from jobs.fleet import run_held_back
from jobs.models import JobRun, Trigger
from jobs.panels import millis_text, run_summary_figures
from jobs.params import params_text
from jobs.registry import all_jobs, get_job
from jobs.schedules import ScheduleNotFound, schedule_get, schedule_pause, schedule_resume
from jobs.scheduling import job_pause, job_resume
from jobs.selectors import (
    RunPoint,
    job_overviews,
    job_recent_failures,
    job_run_list,
)
from jobs.services import job_run_request

CHART_RUNS = 30
CHART_WIDTH = 160
CHART_HEIGHT = 48
ACTIONS = {
    "run": ("Run now", TRIGGER_PERMISSION),
    "dry_run": ("Dry run", TRIGGER_PERMISSION),
    "pause": ("Pause", PAUSE_PERMISSION),
    "resume": ("Resume", PAUSE_PERMISSION),
}
SCHEDULE_ACTIONS = {"pause": schedule_pause, "resume": schedule_resume}


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
        duration = millis_text(run.duration_ms) if run.duration_ms is not None else "no duration"
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


@staff_member_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    specs = {spec.name: spec for spec in all_jobs()}
    overviews = job_overviews(now=now)
    recent_runs = job_run_list(limit=15)
    progress = live_progress_bars([overview.last_run for overview in overviews] + recent_runs)
    jobs = [
        {
            "overview": overview,
            "progress": progress.get(overview.last_run.pk) if overview.last_run else None,
            "chart": chart_markup(duration_chart(overview.recent_finished[:CHART_RUNS])),
            "schedules": [
                {"overview": scheduled, "params": params_text(scheduled.schedule.params)}
                for scheduled in overview.schedules
            ],
            "takes_params": specs[overview.name].params is not None,
            "params_hint": params_hint(specs[overview.name]),
        }
        for overview in overviews
    ]
    lag = import_string(conf.DASHBOARD_LAG)(as_of=now) if conf.DASHBOARD_LAG else None
    context = {
        "jobs": jobs,
        **control_sections(request.user),
        "failures": [_run_row(run) for run in job_recent_failures(limit=10)],
        "recent_runs": [
            {
                **_run_row(run),
                "figures": run_summary_figures(run),
                "progress": progress.get(run.pk),
            }
            for run in recent_runs
        ],
        "workers": worker_rows(now=now),
        "worker_lost_after": conf.WORKER_LOST_AFTER,
        "lag": lag,
        "domain_trends": domain_trend_charts(as_of=now),
        "trend_width": TREND_WIDTH,
        "trend_height": TREND_HEIGHT,
        "refresh_seconds": conf.DASHBOARD_REFRESH_SECONDS,
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
        "can_trigger": request.user.has_perm(TRIGGER_PERMISSION),
        "can_pause": request.user.has_perm(PAUSE_PERMISSION),
        "can_pause_schedules": request.user.has_perm(PAUSE_SCHEDULES_PERMISSION),
        "reason_max_length": REASON_MAX_LENGTH,
        "params_max_length": PARAMS_MAX_LENGTH,
        "now": now,
    }
    return render(request, "dashboard/index.html", context)


def _run_row(run: JobRun) -> dict:
    return {"run": run, "params": params_text(run.params)}


@staff_member_required
@require_POST
def job_action(request: HttpRequest, name: str) -> HttpResponse:
    try:
        spec = get_job(name)
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
        params, error = params_or_error(request.POST, spec=spec)
        if error:
            messages.error(request, f"{label} of {name} was not done: {error}")
            return redirect("dashboard")
        run = job_run_request(
            job=name,
            trigger=Trigger.ADMIN,
            requested_by=by,
            reason=reason,
            dry_run=action == "dry_run",
            params=params,
            urgent=urgent_asked(request.POST),
        )
        shown = f" ({params_text(run.params)})" if run.params else ""
        lane = " on the urgent lane" if run.urgent else ""
        messages.success(request, f"{label} of {name}{shown} queued as run #{run.pk}{lane}.")
        if held_back := run_held_back(run):
            messages.warning(request, f"Run #{run.pk} has not started: {held_back}.")
    else:
        service = job_pause if action == "pause" else job_resume
        service(job=name, by=by, reason=reason)
        messages.success(request, f"{name} {'paused' if action == 'pause' else 'resumed'}.")
    return redirect("dashboard")


@staff_member_required
@require_POST
def schedule_action(request: HttpRequest, schedule_id: int) -> HttpResponse:
    try:
        schedule = schedule_get(schedule_id)
    except ScheduleNotFound as exc:
        raise Http404(str(exc)) from None
    action = request.POST.get("action", "")
    if action not in SCHEDULE_ACTIONS:
        messages.error(request, f"Unknown action {action!r}.")
        return redirect("dashboard")
    label = action.capitalize()
    if not request.user.has_perm(PAUSE_SCHEDULES_PERMISSION):
        raise PermissionDenied(f"{label} needs the {PAUSE_SCHEDULES_PERMISSION} permission.")
    reason, error = reason_or_error(request.POST, default=f"{label} from the dashboard")
    if error:
        messages.error(request, f"{label} of schedule {schedule.name} was not done: {error}")
        return redirect("dashboard")
    SCHEDULE_ACTIONS[action](schedule=schedule, by=request.user.get_username(), reason=reason)
    done = "paused" if action == "pause" else "resumed"
    messages.success(request, f"Schedule {schedule.name} {done}.")
    return redirect("dashboard")
