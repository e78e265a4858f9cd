"""A run's page on the dashboard, and its buttons: retry a failed run, cancel one not finished.
A run under way shows its progress and refreshes every few seconds; every run shows each of its
attempts' own log lines, and the runs it is linked to (retries, shards, follow-ups)."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from jobs.cancellation import job_run_cancel
from jobs.conf import conf
from jobs.dashboard.forms import REASON_MAX_LENGTH, reason_or_error
from jobs.dashboard.live import attempt_logs, refresh_seconds_of, run_progress_bar
from jobs.exceptions import (
    CANCEL_PERMISSION,
    RETRY_PERMISSION,
    RunNotCancellable,
    RunNotRetryable,
    UnknownRun,
)
from jobs.fleet import run_held_back
from jobs.models import JobRun, RunStatus, Trigger
from jobs.panels import run_summary_figures
from jobs.params import params_text
from jobs.selectors import job_run_get, run_follow_ups
from jobs.services import job_run_request


@staff_member_required
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    try:
        run = job_run_get(run_id=run_id)
    except JobRun.DoesNotExist:
        raise Http404(f"no run #{run_id}") from None
    stopping = run.cancel_requested_at is not None and not run.is_finished
    attempts = list(run.attempts.all())
    context = {
        "run": run,
        "params": params_text(run.params),
        "figures": run_summary_figures(run, detail=True),
        "summary_json": json.dumps(run.summary, indent=2, sort_keys=True, default=str),
        "reason_max_length": REASON_MAX_LENGTH,
        "can_retry": run.status == RunStatus.FAILED and request.user.has_perm(RETRY_PERMISSION),
        "can_cancel": not run.is_finished
        and not stopping
        and request.user.has_perm(CANCEL_PERMISSION),
        "stopping": stopping,
        "held_back": run_held_back(run) if run.status == RunStatus.QUEUED else "",
        "retries": run.retries.order_by("id"),
        "follow_ups": run_follow_ups(run=run),
        "attempts": attempts,
        "progress": run_progress_bar(run),
        "logs": attempt_logs(attempts),
        "log_lines_kept": conf.RUN_LOG_LINES,
        "refresh_seconds": refresh_seconds_of(run),
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


@staff_member_required
@require_POST
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    if not request.user.has_perm(CANCEL_PERMISSION):
        raise PermissionDenied(f"Cancelling needs the {CANCEL_PERMISSION} permission.")
    reason, error = reason_or_error(request.POST, default="Cancel from the dashboard")
    if error:
        messages.error(request, f"Run #{run_id} was not cancelled: {error}")
        return redirect("dashboard-run", run_id=run_id)
    try:
        run = job_run_cancel(run=run_id, by=request.user.get_username(), reason=reason)
    except UnknownRun as exc:
        raise Http404(str(exc)) from None
    except RunNotCancellable as exc:
        messages.error(request, f"Run #{run_id} was not cancelled: {exc}.")
        return redirect("dashboard-run", run_id=run_id)
    if run.is_finished:
        messages.success(request, f"Run #{run_id} cancelled.")
    else:
        messages.success(request, f"Run #{run_id} is stopping: it ends at its next batch boundary.")
    return redirect("dashboard-run", run_id=run_id)
