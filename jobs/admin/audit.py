"""The audit of control actions in the admin: read-only, every pause, resume, cancel, clear,
requeue, delete, limit change and drain with who, when, why, and the state before and after."""

from __future__ import annotations

import json

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from jobs.admin.tools import PRE, ReadOnlyAdmin, nowrap, shortened, when_text
from jobs.models import ControlAction

REASON_SHOWN = 80


def audit_link(target_type: str, target: str):
    """A link to the audit entries of one target: a queue, a job, a rate limit."""
    query = urlencode({"target_type__exact": target_type, "target": target})
    url = f"{reverse('admin:jobs_controlaction_changelist')}?{query}"
    return format_html('<a href="{}">audit</a>', url)


def change_text(entry: ControlAction) -> str:
    """What changed, in one line: each value before and after (`paused: false → true`)."""
    before, after = entry.before or {}, entry.after or {}
    return "; ".join(
        f"{field}: {json.dumps(before.get(field))} → {json.dumps(after.get(field))}"
        if field in before and field in after
        else f"{field}: {json.dumps(before.get(field, after.get(field)))}"
        for field in sorted(set(before) | set(after))
    )


def _json_text(fields: dict | None):
    if fields is None:
        return "—"
    return format_html(PRE, json.dumps(fields, indent=2, sort_keys=True))


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
        return change_text(entry) or "—"

    @admin.display(description="before")
    def before_json(self, entry: ControlAction):
        return _json_text(entry.before)

    @admin.display(description="after")
    def after_json(self, entry: ControlAction):
        return _json_text(entry.after)
