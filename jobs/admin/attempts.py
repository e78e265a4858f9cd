"""A run's attempts in the admin: each with its status, times, worker, message and error, the
traceback folded under its last line."""

from __future__ import annotations

from django.contrib import admin

from jobs.admin.tools import collapsed, nowrap, pre_text, status_badge, when_text
from jobs.exceptions import VIEW_RUNS_PERMISSION
from jobs.models import JobRunAttempt


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
