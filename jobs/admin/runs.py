"""Run records in the admin: read-only, with their attempts, parameters and schedule, and the
one action, retrying failed runs through the same service as the API and the dashboard."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from jobs.admin.tools import (
    MUTED,
    PRE,
    JobPermissions,
    ReadOnlyAdmin,
    collapsed,
    dry_run_mark,
    nowrap,
    pre_text,
    shortened,
    status_badge,
    when_text,
    with_reason,
)
from jobs.exceptions import VIEW_RUNS_PERMISSION
from jobs.models import JobRun, JobRunAttempt, RunStatus, Trigger
from jobs.panels import run_summary_figures
from jobs.params import params_text
from jobs.services import job_run_request


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""


class JobRunAttemptInline(admin.TabularInline):
    model = JobRunAttempt
    extra = 0
    can_delete = False
    fields = (
        "number",
        "status_text",
        "started",
        "finished",
        "worker_text",
        "message_id",
        "error_text",
    )
    readonly_fields = fields
    verbose_name = "attempt"
    # Django's tabular inline, without the "attempt 1 of run #4" line above every row.
    template = "admin/steward/attempts_inline.html"

    def has_view_permission(self, request, obj=None) -> bool:
        # Attempts are part of their run: whoever may see the run sees them.
        return request.user.has_perm(VIEW_RUNS_PERMISSION)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="status")
    def status_text(self, attempt: JobRunAttempt):
        return status_badge(attempt.status)

    @admin.display(description="started")
    def started(self, attempt: JobRunAttempt):
        return nowrap(when_text(attempt.started_at))

    @admin.display(description="finished")
    def finished(self, attempt: JobRunAttempt):
        return nowrap(when_text(attempt.finished_at))

    @admin.display(description="worker")
    def worker_text(self, attempt: JobRunAttempt):
        return nowrap(attempt.worker) if attempt.worker else "—"

    @admin.display(description="error (click for the traceback)")
    def error_text(self, attempt: JobRunAttempt):
        # Attempts of a run fail alike: each traceback stays folded under its error line.
        if not attempt.traceback:
            return pre_text(attempt.error)
        return collapsed(attempt.error or _last_line(attempt.traceback), attempt.traceback)


@admin.register(JobRun)
class JobRunAdmin(JobPermissions, ReadOnlyAdmin):
    list_display = ("id", "job_text", "status_text", "requested", "created", "duration")
    list_display_links = ("id", "job_text")
    list_filter = ("job", "status", "trigger", "schedule", "dry_run", "created_at")
    search_fields = ("=id", "job", "requested_by", "reason", "error", "message_id")
    inlines = [JobRunAttemptInline]
    actions = ["retry_failed"]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "job",
                    "params_shown",
                    "status_text",
                    "status_reason",
                    "dry_run_text",
                    "as_of",
                    "schedule_link",
                    "slot",
                )
            },
        ),
        ("Who and why", {"fields": ("trigger", "requested_by", "reason", "retry_of", "parent")}),
        (
            "Timing",
            {"fields": ("created", "started", "finished", "duration", "attempt_count")},
        ),
        ("Outcome", {"fields": ("summary_text", "summary_json", "error_text", "traceback_text")}),
        ("Delivery", {"fields": ("message_id", "code_version", "idempotency_key", "repairs")}),
    )
    readonly_fields = (
        "job",
        "params_shown",
        "status_text",
        "status_reason",
        "dry_run_text",
        "as_of",
        "schedule_link",
        "slot",
        "trigger",
        "requested_by",
        "reason",
        "retry_of",
        "parent",
        "created",
        "started",
        "finished",
        "duration",
        "attempt_count",
        "summary_text",
        "summary_json",
        "error_text",
        "traceback_text",
        "message_id",
        "code_version",
        "idempotency_key",
        "repairs",
    )

    @admin.display(description="job", ordering="job")
    def job_text(self, run: JobRun):
        job = format_html("{} {}", run.job, dry_run_mark()) if run.dry_run else run.job
        shown = params_text(run.params)
        return format_html("{}" + MUTED, job, shortened(shown)) if shown else job

    @admin.display(description="parameters")
    def params_shown(self, run: JobRun):
        return format_html(PRE, params_text(run.params)) if run.params else "none"

    @admin.display(description="schedule")
    def schedule_link(self, run: JobRun):
        if run.schedule_id is None:
            return "—"
        url = reverse("admin:jobs_schedule_change", args=[run.schedule_id])
        return format_html('<a href="{}">{}</a>', url, run.schedule)

    @admin.display(description="status", ordering="status")
    def status_text(self, run: JobRun):
        return status_badge(run.status, run.get_status_display())

    @admin.display(description="dry run")
    def dry_run_text(self, run: JobRun):
        if run.dry_run:
            return format_html("{} it reported what it would do; nothing changed", dry_run_mark())
        return "no"

    @admin.display(description="trigger · by", ordering="trigger")
    def requested(self, run: JobRun):
        if not run.requested_by or run.requested_by == "scheduler":
            return run.get_trigger_display()
        return format_html("{} · {}", run.get_trigger_display(), run.requested_by)

    @admin.display(description="created", ordering="created_at")
    def created(self, run: JobRun):
        return nowrap(when_text(run.created_at))

    @admin.display(description="started")
    def started(self, run: JobRun):
        return when_text(run.started_at)

    @admin.display(description="finished")
    def finished(self, run: JobRun):
        return when_text(run.finished_at)

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, run: JobRun):
        return "—" if run.duration_ms is None else nowrap(f"{run.duration_ms:,} ms")

    @admin.display(description="summary")
    def summary_text(self, run: JobRun):
        figures = run_summary_figures(run, detail=True)
        if not figures:
            return "—"
        rows = format_html_join(
            "",
            "<tr><th style='font-weight:normal;color:#6e7781;padding-left:0'>{}</th>"
            "<td style='font-variant-numeric:tabular-nums'>{}</td></tr>",
            ((figure.label, figure.value) for figure in figures),
        )
        return format_html("<table style='width:auto'>{}</table>", rows)

    @admin.display(description="full summary")
    def summary_json(self, run: JobRun):
        if not run.summary:
            return "—"
        text = json.dumps(run.summary, indent=2, sort_keys=True, default=str)
        return collapsed("JSON", text)

    @admin.display(description="error")
    def error_text(self, run: JobRun):
        return pre_text(run.error)

    @admin.display(description="traceback")
    def traceback_text(self, run: JobRun):
        if not run.traceback:
            return "—"
        return format_html(
            "<details open><summary style='cursor:pointer'>the last attempt's</summary>"
            + PRE
            + "</details>",
            run.traceback,
        )

    @admin.action(description="Retry selected failed runs", permissions=["retry"])
    def retry_failed(self, request, queryset):
        failed = list(queryset.filter(status=RunStatus.FAILED).order_by("pk"))
        ignored = queryset.exclude(status=RunStatus.FAILED).count()

        def perform(reason: str) -> None:
            by = request.user.get_username()
            retries = [
                job_run_request(
                    job=run.job,
                    trigger=Trigger.RETRY,
                    retry_of=run,
                    requested_by=by,
                    reason=reason,
                )
                for run in failed
            ]
            if retries:
                listed = ", ".join(f"#{retry.pk}" for retry in retries)
                self.message_user(request, f"Retried {len(retries)} run(s) as {listed}.")
            if ignored:
                self.message_user(
                    request,
                    f"{ignored} selected run(s) were not failed and were left alone.",
                    messages.WARNING,
                )

        return with_reason(
            self,
            request,
            title="Retry selected failed runs",
            description=f"Retries {len(failed)} failed run(s) as new runs linked to them."
            + (f" {ignored} selected run(s) are not failed and are left alone." if ignored else ""),
            perform=perform,
        )
