"""The schedules' audit in the admin: read-only, every change with who, when, why, and the
fields before and after."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from jobs.admin.tools import MUTED, ReadOnlyAdmin, json_text, nowrap, shortened, when_text
from jobs.audit import change_text as audit_change_text
from jobs.models import ScheduleChange
from jobs.params import params_text

REASON_SHOWN = 80


def _schedule_summary(fields: dict) -> str:
    """A schedule's fields in one short line: `0 9 * * * in Asia/Tokyo, game="snake", paused`."""
    parts = [f"{fields.get('cron')} in {fields.get('timezone')}"]
    if fields.get("params"):
        parts.append(params_text(fields["params"]))
    if fields.get("enabled") is False:
        parts.append("paused")
    return ", ".join(parts)


def change_text(change: ScheduleChange) -> str:
    """What a change did, in one line: the fields it changed with their old and new values,
    or the schedule it made or removed (the change's own page has every field)."""
    if change.action == ScheduleChange.Action.CREATED:
        return _schedule_summary(change.after or {})
    if change.action == ScheduleChange.Action.REMOVED:
        return f"was {_schedule_summary(change.before or {})}"
    return audit_change_text(change.before, change.after)


@admin.register(ScheduleChange)
class ScheduleChangeAdmin(ReadOnlyAdmin):
    list_display = ("changed", "schedule_text", "action", "changed_by", "reason_text", "what")
    list_filter = ("action", "job", "changed_at")
    search_fields = ("schedule_name", "job", "changed_by", "reason")
    fields = (
        "changed",
        "schedule_text",
        "job",
        "action",
        "changed_by",
        "reason",
        "what",
        "before_json",
        "after_json",
    )
    readonly_fields = fields

    @admin.display(description="when", ordering="changed_at")
    def changed(self, change: ScheduleChange):
        return nowrap(when_text(change.changed_at))

    @admin.display(description="schedule, job", ordering="schedule_name")
    def schedule_text(self, change: ScheduleChange):
        if change.schedule_id is None:
            return format_html("{}" + MUTED, change.schedule_name, change.job)
        url = reverse("admin:jobs_schedule_change", args=[change.schedule_id])
        return format_html('<a href="{}">{}</a>' + MUTED, url, change.schedule_name, change.job)

    @admin.display(description="reason")
    def reason_text(self, change: ScheduleChange):
        return shortened(change.reason, REASON_SHOWN) or "—"

    @admin.display(description="what")
    def what(self, change: ScheduleChange):
        return change_text(change) or "—"

    @admin.display(description="before")
    def before_json(self, change: ScheduleChange):
        return json_text(change.before)

    @admin.display(description="after")
    def after_json(self, change: ScheduleChange):
        return json_text(change.after)
