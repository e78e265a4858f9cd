"""Shared pieces of the admin: read-only model admins, job permissions for actions, the
confirmation page that asks an operator for a reason (and what else an action needs) before it
runs, service refusals shown on a form's fields, a domain row's button to the runs that changed
it, and how statuses, times and money are shown (a coloured badge; a schedule's time in its
zone and in UTC; minor units with the currency)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from redis.exceptions import RedisError

from jobs.dashboard.forms import REASON_MAX_LENGTH, REASON_TOO_LONG
from jobs.entities import entity_run_ids
from jobs.exceptions import (
    CANCEL_PERMISSION,
    CLEAR_QUEUE_PERMISSION,
    PAUSE_PERMISSION,
    PAUSE_QUEUE_PERMISSION,
    QUEUE_LIMITS_PERMISSION,
    RETRY_PERMISSION,
    TRIGGER_PERMISSION,
    VIEW_RUNS_PERMISSION,
    InvalidInput,
    StewardError,
)
from jobs.fleet import run_held_back
from jobs.models import Trigger
from jobs.panels import money_text
from jobs.schedule_selectors import NextRun
from jobs.services import job_run_request

# The dashboard's colours, so a status reads the same on both surfaces.
STATUS_COLOURS = {
    "succeeded": "#1a7f37",
    "released": "#1a7f37",
    "finalized": "#1a7f37",
    "sent": "#1a7f37",
    "fulfilled": "#1a7f37",
    "accepted": "#1a7f37",
    "partial": "#9a6700",
    "abandoned": "#9a6700",
    "retrying": "#9a6700",
    "failed": "#cf222e",
    "lost": "#cf222e",
    "defaulted": "#cf222e",
    "queued": "#0969da",
    "running": "#0969da",
    "waiting": "#0969da",
    "holding": "#0969da",
    "pending": "#0969da",
    "sending": "#0969da",
    "obligated": "#0969da",
    "open": "#0969da",
    # Stopped by an operator: neither a failure nor a success.
    "cancelled": "#8250df",
}
NEUTRAL_COLOUR = "#6e7781"
BADGE = (
    '<span style="display:inline-block;padding:0 .5em;border-radius:1em;color:#fff;'
    'background:{};font-weight:600;font-size:11px;line-height:1.7;white-space:nowrap">{}</span>'
)
DRY_RUN_MARK = (
    '<span style="display:inline-block;padding:0 .5em;border-radius:1em;color:#8250df;'
    "border:1px solid #8250df;font-weight:600;font-size:11px;line-height:1.6;"
    'white-space:nowrap">dry run</span>'
)
NOWRAP = '<span style="white-space:nowrap;font-variant-numeric:tabular-nums">{}</span>'
MUTED = "<div style='color:#6e7781;font-size:11px'>{}</div>"
PRE = "<pre style='white-space: pre-wrap'>{}</pre>"
WHEN = "%Y-%m-%d %H:%M:%S"
MINUTE = "%Y-%m-%d %H:%M"


def status_badge(status: str, label: str | None = None) -> SafeString:
    """A status as a coloured pill: green done, amber partial, red failed, blue in progress."""
    return format_html(BADGE, STATUS_COLOURS.get(status, NEUTRAL_COLOUR), label or status)


def dry_run_mark() -> SafeString:
    return mark_safe(DRY_RUN_MARK)  # a constant: nothing in it comes from a user


def nowrap(text: Any) -> SafeString:
    return format_html(NOWRAP, text)


# A list column shows this much of a run's or a schedule's parameters; its page shows them all.
PARAMS_SHOWN = 60


def shortened(text: str, limit: int = PARAMS_SHOWN) -> str:
    """At most `limit` characters, an ellipsis marking a cut: list columns stay narrow."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def when_text(moment) -> str:
    """A moment in the site's time zone, to the second; "—" for none."""
    return timezone.localtime(moment).strftime(WHEN) if moment else "—"


def next_run_text(next_run: NextRun) -> SafeString:
    """A schedule's next run in its own time zone and, unless that is UTC, in UTC below."""
    local = next_run.local.strftime(f"{MINUTE} %Z")
    if local.endswith(" UTC"):
        return nowrap(local)
    return format_html("{}" + MUTED, nowrap(local), nowrap(next_run.utc.strftime(f"{MINUTE} UTC")))


def pre_text(text: str) -> SafeString | str:
    return format_html(PRE, text) if text else "—"


def collapsed(summary: str, text: str) -> SafeString | str:
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


def money_display(field: str, description: str | None = None) -> Callable:
    """An admin column (and read-only field) showing the model's `field`, an amount in minor
    units, with the currency: `amount_text = money_display("amount")`."""

    @admin.display(description=description or field.replace("_", " "), ordering=field)
    def show(_modeladmin, obj) -> SafeString | str:
        value = getattr(obj, field)
        return "—" if value is None else nowrap(money_text(value))

    show.__name__ = f"{field}_text"
    return show


class MoneyFieldsAdmin(admin.ModelAdmin):
    """Shows each of `money_fields` with the currency on the change page too: the field is
    swapped for its `<field>_text` display (define it with `money_display`)."""

    money_fields: tuple[str, ...] = ()

    def get_readonly_fields(self, request, obj=None):
        shown = [f"{name}_text" for name in self.money_fields]
        return [*super().get_readonly_fields(request, obj), *shown]

    def get_fields(self, request, obj=None):
        fields: list[str] = []
        for name in super().get_fields(request, obj):
            name = f"{name}_text" if name in self.money_fields else name
            if name not in fields:
                fields.append(name)
        return fields


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that only services write: the admin shows them and runs guarded actions."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def entity_runs_url(entity: str, pk: int) -> str:
    """The run list filtered to exactly the runs that changed row `pk` of `entity`."""
    changelist = reverse("admin:jobs_jobrun_changelist")
    return f"{changelist}?{urlencode({'entity': entity, 'entity_id': pk})}"


class EntityRunsLink:
    """A "Runs that changed it" button on the change page of a row jobs change, counting
    them, for whoever may see runs. `run_entity` is the name its app registered it under
    (jobs.entities)."""

    run_entity: str
    change_form_template = "admin/steward/entity_change_form.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = dict(extra_context or {})
        if request.user.has_perm(VIEW_RUNS_PERMISSION) and object_id.isdigit():
            pk = int(object_id)
            context["entity_runs_url"] = entity_runs_url(self.run_entity, pk)
            context["entity_runs_count"] = len(entity_run_ids(self.run_entity, pk))
        return super().change_view(request, object_id, form_url, context)


class JobPermissions:
    """`has_<name>_permission` methods for `@admin.action(permissions=[name])`."""

    def has_trigger_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(TRIGGER_PERMISSION)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RETRY_PERMISSION)

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PAUSE_PERMISSION)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CANCEL_PERMISSION)

    def has_pause_queue_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PAUSE_QUEUE_PERMISSION)

    def has_clear_queue_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CLEAR_QUEUE_PERMISSION)

    def has_queue_limits_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(QUEUE_LIMITS_PERMISSION)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        widget=forms.TextInput(attrs={"size": 60, "autofocus": True}),
        help_text=f"Recorded with your name; at most {REASON_MAX_LENGTH} characters.",
        error_messages={"max_length": REASON_TOO_LONG},
    )


def form_errors_from(form: forms.BaseForm, exc: InvalidInput) -> None:
    """A service's refusal on the form's fields: `params.<name>` on the params field (naming
    the parameter), any field the form lacks above the form."""
    for field, texts in exc.fields.items():
        name, _, parameter = field.partition(".")
        if parameter:
            texts = [f"{parameter}: {text}" for text in texts]
        form.add_error(name if name in form.fields else None, texts)


def with_form(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    title: str,
    description: str,
    perform: Callable[[dict], None],
    form_class: type[forms.Form] = ReasonForm,
    initial: dict | None = None,
    back_url: str = "",
) -> TemplateResponse | None:
    """Ask for a reason (and whatever else `form_class` asks) on a confirmation page; once the
    form is valid, `perform(cleaned_data)`. If the service refuses the input (InvalidInput),
    the page comes back with the refusal on the fields; any other refusal, or a broker that
    does not answer, is a message on the page the admin goes back to.

    Returning None sends the admin back (to the change list for an action), where `perform`'s
    messages show. `back_url` is where the page's Cancel link goes, the change list if none.
    """
    if "apply" in request.POST:
        form = form_class(request.POST)
        if form.is_valid():
            try:
                perform(form.cleaned_data)
            except InvalidInput as exc:
                form_errors_from(form, exc)
            except (StewardError, RedisError) as exc:
                modeladmin.message_user(request, refusal_text(exc), messages.ERROR)
                return None
            else:
                return None
    else:
        form = form_class(initial=initial)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "description": description,
        "form": form,
        "opts": modeladmin.model._meta,
        "action": request.POST.get("action", ""),
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "back_url": back_url,
    }
    return TemplateResponse(request, "admin/steward/reason_form.html", context)


def with_reason(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    title: str,
    description: str,
    perform: Callable[[str], None],
    back_url: str = "",
) -> TemplateResponse | None:
    """Ask for a reason on a confirmation page; once one is given, `perform(reason)`."""
    return with_form(
        modeladmin,
        request,
        title=title,
        description=description,
        perform=lambda data: perform(data["reason"]),
        back_url=back_url,
    )


def refusal_text(exc: Exception) -> str:
    """What an operator reads when a service refuses or the broker does not answer."""
    if isinstance(exc, RedisError):
        return f"The broker does not answer ({exc})."
    return str(exc)


def enqueue_job_action(
    modeladmin: admin.ModelAdmin, request: HttpRequest, *, job: str, label: str
) -> TemplateResponse | None:
    """An action that runs a whole job now, whatever rows are selected: the job sweeps
    everything due, exactly as its schedule would."""

    def perform(reason: str) -> None:
        run = job_run_request(
            job=job, trigger=Trigger.ADMIN, requested_by=request.user.get_username(), reason=reason
        )
        modeladmin.message_user(request, f"Queued {job} run #{run.pk}.", messages.SUCCESS)
        if held_back := run_held_back(run):
            modeladmin.message_user(
                request, f"Run #{run.pk} has not started: {held_back}.", messages.WARNING
            )

    return with_reason(
        modeladmin,
        request,
        title=label,
        description=f"This queues a run of {job}, which handles everything due now, not only "
        "the selected rows.",
        perform=perform,
    )


def json_text(fields: dict | None):
    """A JSON value laid out for reading, or a dash for none."""
    if fields is None:
        return "—"
    return format_html(PRE, json.dumps(fields, indent=2, sort_keys=True))
