"""Shared pieces of the admin: read-only model admins, job permissions for actions, and the
confirmation page that asks an operator for a reason before an action runs."""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.http import HttpRequest
from django.template.response import TemplateResponse

from jobs.exceptions import PAUSE_PERMISSION, RETRY_PERMISSION, TRIGGER_PERMISSION
from jobs.models import Trigger
from jobs.services import job_run_request


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that only services write: the admin shows them and runs guarded actions."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class JobPermissions:
    """`has_<name>_permission` methods for `@admin.action(permissions=[name])`."""

    def has_trigger_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(TRIGGER_PERMISSION)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RETRY_PERMISSION)

    def has_pause_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PAUSE_PERMISSION)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        widget=forms.TextInput(attrs={"size": 60, "autofocus": True}),
        help_text="Recorded with your name.",
    )


def with_reason(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    title: str,
    description: str,
    perform: Callable[[str], None],
) -> TemplateResponse | None:
    """Ask for a reason on a confirmation page; once one is given, `perform(reason)`.

    Returning None sends the admin back to the change list, where `perform`'s messages show.
    """
    if "apply" in request.POST:
        form = ReasonForm(request.POST)
        if form.is_valid():
            perform(form.cleaned_data["reason"])
            return None
    else:
        form = ReasonForm()
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
    }
    return TemplateResponse(request, "admin/steward/reason_form.html", context)


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

    return with_reason(
        modeladmin,
        request,
        title=label,
        description=f"This queues a run of {job}, which handles everything due now, not only "
        "the selected rows.",
        perform=perform,
    )
