"""Run records in the admin: read-only, with their progress, attempts (each with its wait and its
own log lines), parameters and schedule; filtered to the runs that changed a domain row; and two
actions, retrying failed runs and cancelling unfinished ones (also from a run's page), through
the same services as the API and the dashboard."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from jobs.admin.attempts import JobRunAttemptInline, attempt_logs_text
from jobs.admin.entity_filter import ChangedEntityFilter, changed_entity
from jobs.admin.progress import progress_text
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
from jobs.cancellation import job_run_cancel
from jobs.exceptions import InvalidInput, RunNotCancellable
from jobs.models import JobRun, RunStatus, Trigger
from jobs.panels import millis_text, run_summary_figures
from jobs.params import params_text
from jobs.selectors import run_follow_ups, run_progress
from jobs.services import job_run_request


@admin.register(JobRun)
class JobRunAdmin(JobPermissions, ReadOnlyAdmin):
    list_display = ("id", "job_text", "status_text", "requested", "created", "duration")
    list_display_links = ("id", "job_text")
    list_filter = (
        ChangedEntityFilter,
        "job",
        "status",
        "trigger",
        "schedule",
        "dry_run",
        "created_at",
    )
    search_fields = ("=id", "job", "requested_by", "reason", "error", "message_id")
    inlines = [JobRunAttemptInline]
    actions = ["retry_failed", "cancel_runs"]
    # Django's change page, with a Cancel button for a run that has not finished.
    change_form_template = "admin/steward/run_change_form.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "job",
                    "params_shown",
                    "status_text",
                    "status_reason",
                    # Once the run reported progress (a fanned-out run: once a shard did).
                    "progress_shown",
                    "dry_run_text",
                    "urgent",
                    "as_of",
                    "schedule_link",
                    "slot",
                )
            },
        ),
        (
            "Who and why",
            {
                "fields": (
                    "trigger",
                    "requested_by",
                    "reason",
                    "retry_of",
                    "parent",
                    "follow_up_of_link",
                    "follow_ups_links",
                )
            },
        ),
        (
            "Cancel",
            {"fields": ("cancel_requested", "cancel_requested_by", "cancel_reason")},
        ),
        (
            "Timing",
            {"fields": ("created", "started", "finished", "duration", "attempt_count")},
        ),
        (
            "Outcome",
            # The attempts' own lines, folded, once one logged something.
            {
                "fields": (
                    "summary_text",
                    "summary_json",
                    "error_text",
                    "traceback_text",
                    "log_text",
                )
            },
        ),
        ("Delivery", {"fields": ("message_id", "code_version", "idempotency_key", "repairs")}),
    )

    def get_fieldsets(self, request, obj=None):
        # The cancel section, the progress and the log lines only say something once there
        # is something: a run's page stays short.
        hidden = set()
        if obj is None or obj.cancel_requested_at is None:
            hidden.add("Cancel")
        if obj is None or run_progress(obj) is None:
            hidden.add("progress_shown")
        if obj is None or not any(attempt.log for attempt in obj.attempts.all()):
            hidden.add("log_text")
        return tuple(
            (name, {**options, "fields": [f for f in options["fields"] if f not in hidden]})
            for name, options in self.fieldsets
            if name not in hidden
        )

    readonly_fields = (
        "job",
        "params_shown",
        "status_text",
        "status_reason",
        "dry_run_text",
        "urgent",
        "as_of",
        "schedule_link",
        "slot",
        "trigger",
        "requested_by",
        "reason",
        "retry_of",
        "parent",
        "follow_up_of_link",
        "follow_ups_links",
        "cancel_requested",
        "cancel_requested_by",
        "cancel_reason",
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
        "progress_shown",
        "log_text",
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

    @admin.display(description="follow-up of")
    def follow_up_of_link(self, run: JobRun):
        if run.follow_up_of_id is None:
            return "—"
        return _run_link(run.follow_up_of)

    @admin.display(description="follow-ups")
    def follow_ups_links(self, run: JobRun):
        follow_ups = run_follow_ups(run=run)
        if not follow_ups:
            return "none"
        return format_html_join(
            mark_safe("<br>"),  # a constant
            "{} {}",
            ((_run_link(follow_up), status_badge(follow_up.status)) for follow_up in follow_ups),
        )

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

    @admin.display(description="cancel asked at")
    def cancel_requested(self, run: JobRun):
        return when_text(run.cancel_requested_at)

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
        return "—" if run.duration_ms is None else nowrap(millis_text(run.duration_ms))

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

    @admin.display(description="progress")
    def progress_shown(self, run: JobRun):
        return progress_text(run_progress(run), running=not run.is_finished)

    @admin.display(description="each attempt's lines")
    def log_text(self, run: JobRun):
        return attempt_logs_text(run.attempts.all())

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

    def get_urls(self):
        cancel = self.admin_site.admin_view(self.cancel_view)
        return [
            path("<path:object_id>/cancel/", cancel, name="jobs_jobrun_cancel"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        # A bad ?entity=/&entity_id= is a 400 naming the parameter, not the admin's redirect
        # to "?e=1" and its "Database error" page (for whoever may see the list at all).
        try:
            if self.has_view_or_change_permission(request):
                changed_entity(request.GET)
        except InvalidInput as exc:
            context = {
                **self.admin_site.each_context(request),
                "title": "Runs that changed a row",
                "opts": self.model._meta,
                "fields": exc.fields,
            }
            return TemplateResponse(request, "admin/steward/bad_filter.html", context, status=400)
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        can_cancel = (
            run is not None
            and not run.is_finished
            and self.has_cancel_permission(request)
            and run.cancel_requested_at is None
        )
        context = {"can_cancel": can_cancel, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, context)

    def _cancel(self, request, runs: list[JobRun], reason: str) -> None:
        """Cancel each run; a finished one is refused by name, the others are cancelled."""
        by = request.user.get_username()
        cancelled, stopping = [], []
        for run in runs:
            try:
                done = job_run_cancel(run=run, by=by, reason=reason)
            except RunNotCancellable as exc:
                self.message_user(request, f"Not cancelled: {exc}.", messages.ERROR)
                continue
            (cancelled if done.status == RunStatus.CANCELLED else stopping).append(f"#{done.pk}")
        if cancelled:
            self.message_user(request, f"Cancelled {', '.join(cancelled)}.")
        if stopping:
            self.message_user(
                request,
                f"Asked {', '.join(stopping)} to stop: each ends cancelled at its next batch "
                "boundary, keeping the batches it committed.",
            )

    @admin.action(description="Cancel selected runs", permissions=["cancel"])
    def cancel_runs(self, request, queryset):
        runs = list(queryset.order_by("pk"))
        listed = ", ".join(f"#{run.pk} {run.job} ({run.status})" for run in runs)
        return with_reason(
            self,
            request,
            title="Cancel selected runs",
            description=f"Cancels {listed}. A queued run is cancelled at once, a running one "
            "stops at its next batch boundary; a finished run cannot be cancelled.",
            perform=lambda reason: self._cancel(request, runs, reason),
        )

    def cancel_view(self, request, object_id: str):
        """A run's Cancel button: the reason asked, then back to the run's page."""
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        run = get_object_or_404(JobRun, pk=object_id)
        run_url = reverse("admin:jobs_jobrun_change", args=[run.pk])
        page = with_reason(
            self,
            request,
            title=f"Cancel run #{run.pk}",
            description=f"Cancels run #{run.pk} of {run.job}, now {run.get_status_display()}. "
            "A queued run is cancelled at once, a running one stops at its next batch boundary.",
            perform=lambda reason: self._cancel(request, [run], reason),
            back_url=run_url,
        )
        return page or HttpResponseRedirect(run_url)


def _run_link(run: JobRun):
    url = reverse("admin:jobs_jobrun_change", args=[run.pk])
    return format_html('<a href="{}">{} run #{}</a>', url, run.job, run.pk)
