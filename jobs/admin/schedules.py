"""Schedules in the admin: listed with their next runs in their own time zones and in UTC,
added, changed, paused, resumed and removed only through the schedule services (which validate
every field and audit every change), with the audit listed on each schedule."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from jobs.admin.schedule_changes import change_text
from jobs.admin.schedule_form import ScheduleForm
from jobs.admin.tools import (
    MUTED,
    next_run_text,
    nowrap,
    shortened,
    status_badge,
    when_text,
    with_reason,
)
from jobs.cron import cron_in_words, next_slots
from jobs.exceptions import PAUSE_SCHEDULES_PERMISSION
from jobs.models import JobRun, JobState, Schedule
from jobs.params import params_text
from jobs.schedule_selectors import (
    NEXT_RUNS_SHOWN,
    NextRun,
    schedule_changes,
    schedule_missed_slots,
)
from jobs.schedules import schedule_pause, schedule_remove, schedule_resume

CHANGES_SHOWN = 50
REMOVED_IN_ADMIN = "removed in the admin"


def _next_runs(schedule: Schedule, count: int) -> list[NextRun]:
    zone = ZoneInfo(schedule.timezone)
    return [
        NextRun(utc=slot, local=slot.astimezone(zone))
        for slot in next_slots(schedule.cron, timezone.now(), count, schedule.timezone)
    ]


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    # Narrow enough for a 1400 px screen: the job is under the name, the time zone under the
    # cron, catch-up under the state.
    list_display = ("name_and_job", "when", "params_column", "state", "next_run", "last_run")
    list_filter = ("job", "enabled", "timezone")
    search_fields = ("name", "job")
    actions = ["delete_selected", "pause_schedules", "resume_schedules"]
    readonly_fields = (
        "params_shown",
        "in_words",
        "next_runs_text",
        "missed_text",
        "last_run",
        "created_by",
        "created_at",
        "updated_by",
        "updated_at",
        "next_slot",
        "changes_text",
    )

    def get_queryset(self, request):
        latest = JobRun.objects.filter(schedule=OuterRef("pk")).order_by("-id")
        return (
            super()
            .get_queryset(request)
            .annotate(
                last_run_id=Subquery(latest.values("id")[:1]),
                last_run_status=Subquery(latest.values("status")[:1]),
                job_paused=Exists(JobState.objects.filter(job=OuterRef("job"), paused=True)),
            )
        )

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"changed_by": request.user.get_username()})

    def get_fieldsets(self, request, obj=None):
        editable = self.has_change_permission(request, obj) if obj else True
        main = ["name", "job", "cron", "timezone", "params", "enabled", "catch_up"]
        if not editable:
            main[main.index("params")] = "params_shown"
        fieldsets = [
            (None, {"fields": [*main, *(["reason"] if editable else [])]}),
            (
                "Retries",
                {
                    "fields": ["max_retries", "min_backoff_ms"],
                    "description": "Empty: the job's own settings.",
                },
            ),
            ("Notes", {"fields": ["notes"]}),
        ]
        if obj is None:
            return fieldsets
        return [
            *fieldsets,
            ("When", {"fields": ["in_words", "next_runs_text", "missed_text", "last_run"]}),
            (
                "Record",
                {
                    "fields": [
                        "created_by",
                        "created_at",
                        "updated_by",
                        "updated_at",
                        "next_slot",
                    ]
                },
            ),
            ("Changes", {"fields": ["changes_text"]}),
        ]

    def save_model(self, request, obj, form, change) -> None:
        """Nothing left to save: the form saved the schedule through its service."""

    def delete_model(self, request, obj) -> None:
        schedule_remove(schedule=obj, by=request.user.get_username(), reason=REMOVED_IN_ADMIN)

    def delete_queryset(self, request, queryset) -> None:
        for schedule in queryset.order_by("pk"):
            self.delete_model(request, schedule)

    def has_pause_schedule_permission(self, request) -> bool:
        return request.user.has_perm(PAUSE_SCHEDULES_PERMISSION)

    @admin.display(description="name, job", ordering="name")
    def name_and_job(self, schedule: Schedule):
        return format_html("{}" + MUTED, schedule.name, schedule.job)

    @admin.display(description="when, zone", ordering="timezone")
    def when(self, schedule: Schedule):
        return format_html(
            "{}<br><code style='white-space:nowrap'>{}</code>" + MUTED,
            cron_in_words(schedule.cron),
            schedule.cron,
            schedule.timezone,
        )

    @admin.display(description="parameters")
    def params_column(self, schedule: Schedule):
        return shortened(params_text(schedule.params)) or "—"

    @admin.display(description="parameters")
    def params_shown(self, schedule: Schedule):
        return params_text(schedule.params) or "none"

    @admin.display(description="state", ordering="enabled")
    def state(self, schedule: Schedule):
        if not schedule.enabled:
            badge = status_badge("partial", "paused")
        elif getattr(schedule, "job_paused", False):
            badge = status_badge("partial", "job paused")
        else:
            badge = status_badge("", "enabled")
        missed = "catches up" if schedule.catch_up else "no catch-up"
        return format_html("{}" + MUTED, badge, nowrap(missed))

    @admin.display(description="next run")
    def next_run(self, schedule: Schedule):
        upcoming = _next_runs(schedule, 1)
        return next_run_text(upcoming[0]) if upcoming else "—"

    @admin.display(description="last run")
    def last_run(self, schedule: Schedule):
        run_id = getattr(schedule, "last_run_id", None)
        if run_id is None:
            return "none yet"
        url = reverse("admin:jobs_jobrun_change", args=[run_id])
        return format_html('<a href="{}">#{}</a>' + MUTED, url, run_id, schedule.last_run_status)

    @admin.display(description="in words")
    def in_words(self, schedule: Schedule):
        return format_html("{}, in {}", cron_in_words(schedule.cron), schedule.timezone)

    @admin.display(description="next runs")
    def next_runs_text(self, schedule: Schedule):
        upcoming = _next_runs(schedule, NEXT_RUNS_SHOWN)
        if not upcoming:
            return "—"
        lines = ((next_run_text(run),) for run in upcoming)
        return format_html_join("", "<div style='margin-bottom:4px'>{}</div>", lines)

    @admin.display(description="missed slots")
    def missed_text(self, schedule: Schedule):
        missed = schedule_missed_slots(schedule=schedule)
        if not missed.count:
            return "none"
        return format_html("{} (the latest {})", missed.count, when_text(missed.latest[-1]))

    @admin.display(description="audit (newest first)")
    def changes_text(self, schedule: Schedule):
        changes = schedule_changes(schedule=schedule, limit=CHANGES_SHOWN)
        if not changes:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    nowrap(when_text(change.changed_at)),
                    change.get_action_display(),
                    change.changed_by or "—",
                    change.reason or "—",
                    change_text(change),
                )
                for change in changes
            ),
        )
        return format_html(
            "<table><thead><tr><th>when</th><th>action</th><th>by</th><th>reason</th>"
            "<th>what</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def _set_enabled(self, request, queryset, *, enable: bool):
        label, service = ("Resume", schedule_resume) if enable else ("Pause", schedule_pause)
        selected = list(queryset.order_by("name"))
        to_change = [schedule for schedule in selected if schedule.enabled is not enable]
        already = [schedule.name for schedule in selected if schedule.enabled is enable]
        names = ", ".join(schedule.name for schedule in to_change) or "nothing"

        def perform(reason: str) -> None:
            by = request.user.get_username()
            for schedule in to_change:
                service(schedule=schedule, by=by, reason=reason)
            if to_change:
                self.message_user(request, f"{label}d {names}.", messages.SUCCESS)
            if already:
                state = "running" if enable else "paused"
                self.message_user(
                    request, f"Already {state}, left alone: {', '.join(already)}.", messages.WARNING
                )

        note = "" if enable else " Their slots are recorded as skipped until resumed."
        return with_reason(
            self,
            request,
            title=f"{label} schedules",
            description=f"{label} {names}.{note}",
            perform=perform,
        )

    @admin.action(description="Pause selected schedules", permissions=["pause_schedule"])
    def pause_schedules(self, request, queryset):
        return self._set_enabled(request, queryset, enable=False)

    @admin.action(description="Resume selected schedules", permissions=["pause_schedule"])
    def resume_schedules(self, request, queryset):
        return self._set_enabled(request, queryset, enable=True)
