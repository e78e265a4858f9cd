"""A queue's dead letters in the admin: the oldest with their runs, and requeueing or deleting
one or all of them, each with a reason, through the services the API calls."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from redis.exceptions import RedisError

from jobs.admin.tools import ReasonForm, refusal_text
from jobs.dead_letters import queue_dead_letters, queue_delete_dead, queue_requeue_dead
from jobs.exceptions import (
    DELETE_DEAD_PERMISSION,
    REQUEUE_DEAD_PERMISSION,
    VIEW_RUNS_PERMISSION,
    StewardError,
)
from jobs.queues import queue_names

# The page lists this many; "all" acts on every dead letter of the queue.
LETTERS_SHOWN = 100
ALL = "all"


def _operate(request, *, queue: str, operation: str, target: str, reason: str) -> str:
    """Requeue or delete one dead letter (`target` its message id) or all; what happened."""
    by = request.user.get_username()
    message_ids = None if target == ALL else [target]
    if operation == "requeue":
        counts = queue_requeue_dead(
            queue=queue, requested_by=by, message_ids=message_ids, reason=reason
        )
        return (
            f"Requeued {counts['requeued']} dead letter(s) of {queue}; "
            f"{counts['runs_retried']} failed run(s) retried as new runs."
        )
    counts = queue_delete_dead(queue=queue, requested_by=by, message_ids=message_ids, reason=reason)
    return f"Deleted {counts['deleted']} dead letter(s) of {queue}."


def dead_letters_view(modeladmin: admin.ModelAdmin, request, name: str):
    """GET lists the dead letters of the Dramatiq queue `name` (a lane); a POST of `requeue` or
    `delete` (a message id, or "all") with a reason acts, then comes back here."""
    if not request.user.has_perm(VIEW_RUNS_PERMISSION):
        raise PermissionDenied
    if name not in queue_names():
        raise Http404(f"No queue {name!r}.")
    operation = next((op for op in ("requeue", "delete") if op in request.POST), "")
    form = ReasonForm(request.POST if operation else None)
    if operation:
        needed = REQUEUE_DEAD_PERMISSION if operation == "requeue" else DELETE_DEAD_PERMISSION
        if not request.user.has_perm(needed):
            raise PermissionDenied
        if form.is_valid():
            try:
                done = _operate(
                    request,
                    queue=name,
                    operation=operation,
                    target=request.POST[operation],
                    reason=form.cleaned_data["reason"],
                )
            except (StewardError, RedisError) as exc:
                modeladmin.message_user(request, refusal_text(exc), messages.ERROR)
            else:
                modeladmin.message_user(request, done)
            return HttpResponseRedirect(request.path)
    try:
        total, letters = queue_dead_letters(queue=name, limit=LETTERS_SHOWN)
    except RedisError as exc:
        modeladmin.message_user(request, refusal_text(exc), messages.ERROR)
        total, letters = 0, []
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": f"Dead letters of {name}",
        "opts": modeladmin.model._meta,
        "queue": name,
        "total": total,
        "letters": letters,
        "form": form,
        "can_requeue": request.user.has_perm(REQUEUE_DEAD_PERMISSION),
        "can_delete": request.user.has_perm(DELETE_DEAD_PERMISSION),
        "all": ALL,
    }
    return TemplateResponse(request, "admin/steward/dead_letters.html", context)
