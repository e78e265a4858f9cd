"""The fleet's drain in the admin: starting and ending it, each with a reason, through the
services the API and `manage.py drain` call."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse

from jobs.admin.tools import when_text, with_reason
from jobs.controls import fleet_drain_end, fleet_drain_start
from jobs.exceptions import DRAIN_PERMISSION
from jobs.fleet import fleet_draining


def drain_view(modeladmin: admin.ModelAdmin, request, *, start: bool):
    """Ask a reason, then start (or end) the drain and go back to the queues."""
    if not request.user.has_perm(DRAIN_PERMISSION):
        raise PermissionDenied
    if start:
        label, service, done = "Start drain", fleet_drain_start, "The fleet is draining."
    else:
        label, service, done = "End drain", fleet_drain_end, "The drain has ended."

    def perform(reason: str) -> None:
        service(by=request.user.get_username(), reason=reason)
        modeladmin.message_user(request, done)

    draining = fleet_draining()
    state = f"draining since {when_text(draining.draining_since)}" if draining else "not draining"
    effect = (
        "No worker takes a new message; the runs they hold finish."
        if start
        else "Workers take messages again."
    )
    queues = reverse("admin:jobs_queuestate_changelist")
    page = with_reason(
        modeladmin,
        request,
        title=label,
        description=f"The fleet is {state}. {effect}",
        perform=perform,
        back_url=queues,
    )
    return page or HttpResponseRedirect(queues)
