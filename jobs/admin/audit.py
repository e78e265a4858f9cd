"""The audit of control actions in the admin: read-only, every pause, resume, cancel, clear,
requeue, delete, limit change and drain with who, when, why, and the state before and after."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from jobs.admin.tools import ReadOnlyAdmin, json_text, nowrap, shortened, when_text
from jobs.audit import change_text
from jobs.models import ControlAction

REASON_SHOWN = 80


def audit_link(target_type: str, target: str):
    """A link to the audit entries of one target: a queue, a job, a rate limit."""
    query = urlencode({"target_type__exact": target_type, "target": target})
    url = f"{reverse('admin:jobs_controlaction_changelist')}?{query}"
    return format_html('<a href="{}">audit</a>', url)


@admin.register(ControlAction)
class ControlActionAdmin(ReadOnlyAdmin):
    list_display = ("when", "action", "target_type", "target", "actor", "reason_text", "what")
    list_filter = ("action", "target_type", "at")
    search_fields = ("target", "actor", "reason")
    fields = (
        "when",
        "action",
        "target_type",
        "target",
        "actor",
        "reason",
        "what",
        "before_json",
        "after_json",
    )
    readonly_fields = fields

    @admin.display(description="at", ordering="at")
    def when(self, entry: ControlAction):
        return nowrap(when_text(entry.at))

    @admin.display(description="reason")
    def reason_text(self, entry: ControlAction):
        return shortened(entry.reason, REASON_SHOWN) or "—"

    @admin.display(description="what")
    def what(self, entry: ControlAction):
        return change_text(entry.before, entry.after) or "—"

    @admin.display(description="before")
    def before_json(self, entry: ControlAction):
        return json_text(entry.before)

    @admin.display(description="after")
    def after_json(self, entry: ControlAction):
        return json_text(entry.after)
