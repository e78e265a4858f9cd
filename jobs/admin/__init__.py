"""Run records (read-only) and runtime control of jobs. Every action asks for a reason, records
who asked, and calls the same service as the API and the dashboard."""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from jobs.admin.tools import JobPermissions, ReadOnlyAdmin, with_reason
from jobs.cron import cron_in_words, next_slots
from jobs.exceptions import VIEW_RUNS_PERMISSION
from jobs.models import JobRun, JobRunAttempt, JobState, RunStatus, Trigger
from jobs.registry import all_jobs, get_job
from jobs.scheduling import job_pause, job_resume
from jobs.selectors import job_last_finished_run
from jobs.services import job_run_request, job_states_ensure


def _pre(text: str):
    return format_html("<pre style='white-space: pre-wrap'>{}</pre>", text) if text else "—"


class JobRunAttemptInline(admin.TabularInline):
    model = JobRunAttempt
    extra = 0
    can_delete = False
    fields = ("number", "status", "started_at", "finished_at", "worker", "message_id", "error_text")
    readonly_fields = fields

    def has_view_permission(self, request, obj=None) -> bool:
        # Attempts are part of their run: whoever may see the run sees them.
        return request.user.has_perm(VIEW_RUNS_PERMISSION)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="error and traceback")
    def error_text(self, attempt: JobRunAttempt):
        return _pre(attempt.traceback or attempt.error)


@admin.register(JobRun)
class JobRunAdmin(JobPermissions, ReadOnlyAdmin):
    list_display = (
        "id",
        "job",
        "status",
        "trigger",
        "dry_run",
        "requested_by",
        "created_at",
        "duration_ms",
    )
    list_filter = ("job", "status", "trigger", "dry_run", "created_at")
    search_fields = ("=id", "job", "requested_by", "reason", "error", "message_id")
    inlines = [JobRunAttemptInline]
    actions = ["retry_failed"]
    fieldsets = (
        (None, {"fields": ("job", "status", "status_reason", "dry_run", "as_of", "slot")}),
        ("Who and why", {"fields": ("trigger", "requested_by", "reason", "retry_of", "parent")}),
        (
            "Timing",
            {"fields": ("created_at", "started_at", "finished_at", "duration_ms", "attempt_count")},
        ),
        ("Outcome", {"fields": ("summary", "error_text", "traceback_text")}),
        ("Delivery", {"fields": ("message_id", "code_version", "idempotency_key")}),
    )
    readonly_fields = (
        "job",
        "status",
        "status_reason",
        "dry_run",
        "as_of",
        "slot",
        "trigger",
        "requested_by",
        "reason",
        "retry_of",
        "parent",
        "created_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "attempt_count",
        "summary",
        "error_text",
        "traceback_text",
        "message_id",
        "code_version",
        "idempotency_key",
    )

    @admin.display(description="error")
    def error_text(self, run: JobRun):
        return _pre(run.error)

    @admin.display(description="traceback")
    def traceback_text(self, run: JobRun):
        return _pre(run.traceback)

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
    def state(self, state: JobState) -> str:
        return "paused" if state.paused else "enabled"

    @admin.display(description="schedule")
    def schedule(self, state: JobState):
        cron = get_job(state.job).cron
        return format_html("{}<br><code>{}</code>", cron_in_words(cron), cron)

    @admin.display(description="next run")
    def next_run(self, state: JobState):
        slots = next_slots(get_job(state.job).cron, timezone.now(), 1)
        return timezone.localtime(slots[0]) if slots else "—"

    @admin.display(description="last outcome")
    def last_outcome(self, state: JobState):
        run = job_last_finished_run(job=state.job)
        if run is None:
            return "never run"
        url = reverse("admin:jobs_jobrun_change", args=[run.pk])
        return format_html('<a href="{}">#{} {}</a>', url, run.pk, run.status)

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
