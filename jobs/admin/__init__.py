"""Run records (read-only) and runtime control of jobs. Every action asks for a reason, records
who asked, and calls the same service as the API and the dashboard."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from jobs.admin.tools import (
    JobPermissions,
    ReadOnlyAdmin,
    dry_run_mark,
    nowrap,
    status_badge,
    with_reason,
)
from jobs.cron import cron_in_words, next_slots
from jobs.exceptions import VIEW_RUNS_PERMISSION
from jobs.models import JobRun, JobRunAttempt, JobState, RunStatus, Trigger
from jobs.panels import run_summary_figures
from jobs.registry import all_jobs, get_job
from jobs.scheduling import job_pause, job_resume
from jobs.selectors import job_last_finished_run
from jobs.services import job_run_request, job_states_ensure

WHEN = "%Y-%m-%d %H:%M:%S"
PRE = "<pre style='white-space: pre-wrap'>{}</pre>"


def _pre(text: str):
    return format_html(PRE, text) if text else "—"


def _when(moment) -> str:
    return timezone.localtime(moment).strftime(WHEN) if moment else "—"


def _collapsed(summary: str, text: str):
    """`text` folded under a one-line `summary`: long tracebacks stay out of the way."""
    if not text:
        return "—"
    lines = text.count("\n") + 1
    return format_html(
        "<details><summary style='cursor:pointer'>{} <span style='color:#6e7781'>({} lines)"
        "</span></summary>" + PRE + "</details>",
        summary,
        lines,
        text,
    )


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
        return nowrap(_when(attempt.started_at))

    @admin.display(description="finished")
    def finished(self, attempt: JobRunAttempt):
        return nowrap(_when(attempt.finished_at))

    @admin.display(description="worker")
    def worker_text(self, attempt: JobRunAttempt):
        return nowrap(attempt.worker) if attempt.worker else "—"

    @admin.display(description="error (click for the traceback)")
    def error_text(self, attempt: JobRunAttempt):
        # Attempts of a run fail alike: each traceback stays folded under its error line.
        if not attempt.traceback:
            return _pre(attempt.error)
        return _collapsed(attempt.error or _last_line(attempt.traceback), attempt.traceback)


@admin.register(JobRun)
class JobRunAdmin(JobPermissions, ReadOnlyAdmin):
    list_display = ("id", "job_text", "status_text", "requested", "created", "duration")
    list_display_links = ("id", "job_text")
    list_filter = ("job", "status", "trigger", "dry_run", "created_at")
    search_fields = ("=id", "job", "requested_by", "reason", "error", "message_id")
    inlines = [JobRunAttemptInline]
    actions = ["retry_failed"]
    fieldsets = (
        (
            None,
            {"fields": ("job", "status_text", "status_reason", "dry_run_text", "as_of", "slot")},
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
        "status_text",
        "status_reason",
        "dry_run_text",
        "as_of",
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
        if run.dry_run:
            return format_html("{} {}", run.job, dry_run_mark())
        return run.job

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
        return nowrap(_when(run.created_at))

    @admin.display(description="started")
    def started(self, run: JobRun):
        return _when(run.started_at)

    @admin.display(description="finished")
    def finished(self, run: JobRun):
        return _when(run.finished_at)

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
        return _collapsed("JSON", text)

    @admin.display(description="error")
    def error_text(self, run: JobRun):
        return _pre(run.error)

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


@admin.register(JobState)
class JobStateAdmin(JobPermissions, ReadOnlyAdmin):
    list_display = (
        "job",
        "state",
        "schedule",
        "next_run",
        "last_outcome",
        "changed_by",
        "change_reason",
        "changed_at",
    )
    actions = ["run_now", "dry_run", "pause", "resume"]

    def get_queryset(self, request):
        registered = [spec.name for spec in all_jobs()]
        return super().get_queryset(request).filter(job__in=registered)

    def changelist_view(self, request, extra_context=None):
        job_states_ensure()
        return super().changelist_view(request, extra_context)

    @admin.display(description="state")
    def state(self, state: JobState):
        return status_badge("partial", "paused") if state.paused else status_badge("", "enabled")

    @admin.display(description="schedule")
    def schedule(self, state: JobState):
        cron = get_job(state.job).cron
        return format_html(
            "{}<br><code style='white-space:nowrap'>{}</code>", cron_in_words(cron), cron
        )

    @admin.display(description="next run")
    def next_run(self, state: JobState):
        slots = next_slots(get_job(state.job).cron, timezone.now(), 1)
        return nowrap(timezone.localtime(slots[0]).strftime("%Y-%m-%d %H:%M")) if slots else "—"

    @admin.display(description="last outcome")
    def last_outcome(self, state: JobState):
        run = job_last_finished_run(job=state.job)
        if run is None:
            return "never run"
        url = reverse("admin:jobs_jobrun_change", args=[run.pk])
        return format_html('<a href="{}">#{}</a> {}', url, run.pk, status_badge(run.status))

    def _enqueue(self, request, queryset, *, dry_run: bool, label: str):
        jobs = list(queryset.values_list("job", flat=True))

        def perform(reason: str) -> None:
            by = request.user.get_username()
            for job in jobs:
                run = job_run_request(
                    job=job, trigger=Trigger.ADMIN, requested_by=by, reason=reason, dry_run=dry_run
                )
                self.message_user(request, f"{label}: queued {job} run #{run.pk}.")

        return with_reason(
            self,
            request,
            title=label,
            description=f"{label} of {', '.join(jobs)}.",
            perform=perform,
        )

    def _set_paused(self, request, queryset, *, pause: bool):
        jobs = list(queryset.values_list("job", flat=True))
        label, service = ("Pause", job_pause) if pause else ("Resume", job_resume)

        def perform(reason: str) -> None:
            for job in jobs:
                service(job=job, by=request.user.get_username(), reason=reason)
            self.message_user(request, f"{label}d {', '.join(jobs)}.")

        skipped_note = " Their scheduled slots are recorded as skipped until resumed."
        return with_reason(
            self,
            request,
            title=label,
            description=f"{label} {', '.join(jobs)}." + (skipped_note if pause else ""),
            perform=perform,
        )

    @admin.action(description="Run now", permissions=["trigger"])
    def run_now(self, request, queryset):
        return self._enqueue(request, queryset, dry_run=False, label="Run now")

    @admin.action(description="Dry run", permissions=["trigger"])
    def dry_run(self, request, queryset):
        return self._enqueue(request, queryset, dry_run=True, label="Dry run")

    @admin.action(description="Pause", permissions=["pause"])
    def pause(self, request, queryset):
        return self._set_paused(request, queryset, pause=True)

    @admin.action(description="Resume", permissions=["pause"])
    def resume(self, request, queryset):
        return self._set_paused(request, queryset, pause=False)
