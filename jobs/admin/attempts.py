"""A run's attempts in the admin: each with its status, times, how long its message waited for a
worker, the worker, message and error, the traceback folded under its last line; and each
attempt's own log lines, folded, errors and warnings highlighted."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from jobs.admin.tools import MUTED, collapsed, nowrap, pre_text, status_badge, when_text
from jobs.dashboard.live import attempt_logs
from jobs.exceptions import VIEW_RUNS_PERMISSION
from jobs.models import JobRunAttempt
from jobs.panels import millis_text

# Log lines at these levels stand out, in the status colours' red and amber.
LEVEL_STYLES = {
    "ERROR": "background:#ffebe9;color:#cf222e",
    "CRITICAL": "background:#ffebe9;color:#cf222e",
    "WARNING": "background:#fff8c5;color:#9a6700",
}
LOG_LINE = "<div style='white-space:pre-wrap;{}'><span style='color:#6e7781'>{}</span> {}</div>"


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
        "waited",
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

    @admin.display(description="waited")
    def waited(self, attempt: JobRunAttempt):
        """How long its message waited for a worker, and when it was sent (or came due)."""
        if attempt.wait_ms is None:
            return "—"
        waited = millis_text(attempt.wait_ms)
        if attempt.queued_at is None:
            return nowrap(waited)
        return format_html(
            "{}" + MUTED, nowrap(waited), nowrap(f"queued {when_text(attempt.queued_at)}")
        )

    @admin.display(description="worker")
    def worker_text(self, attempt: JobRunAttempt):
        return nowrap(attempt.worker) if attempt.worker else "—"

    @admin.display(description="error (click for the traceback)")
    def error_text(self, attempt: JobRunAttempt):
        # Attempts of a run fail alike: each traceback stays folded under its error line.
        if not attempt.traceback:
            return pre_text(attempt.error)
        return collapsed(attempt.error or _last_line(attempt.traceback), attempt.traceback)


def _counted(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def attempt_logs_text(attempts: Iterable[JobRunAttempt]):
    """Each attempt's own lines, the newest attempt first, each folded under a line counting
    them and its errors and warnings: a run retried a few times stays a short page."""
    shown = []
    for log in attempt_logs(attempts):
        if not log.lines:
            continue
        errors = sum(line.level in ("ERROR", "CRITICAL") for line in log.lines)
        warnings = sum(line.level == "WARNING" for line in log.lines)
        counts = [_counted(len(log.lines), "line")]
        if errors:
            counts.append(_counted(errors, "error"))
        if warnings:
            counts.append(_counted(warnings, "warning"))
        if log.cut:
            counts.append("earlier lines not kept")
        lines = format_html_join(
            "",
            LOG_LINE,
            (
                (
                    LEVEL_STYLES.get(line.level, ""),
                    timezone.localtime(line.at).strftime("%H:%M:%S") if line.at else "",
                    line.line,
                )
                for line in log.lines
            ),
        )
        shown.append(
            format_html(
                "<details><summary style='cursor:pointer'>attempt {} "
                "<span style='color:#6e7781'>({})</span></summary>"
                "<div style='font-family:monospace;font-size:11px;line-height:1.5;"
                "max-height:32em;overflow:auto'>{}</div></details>",
                log.attempt.number,
                ", ".join(counts),
                lines,
            )
        )
    return format_html_join("", "{}", ((part,) for part in shown)) if shown else "—"
