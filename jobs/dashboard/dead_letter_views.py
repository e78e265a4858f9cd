"""A queue's dead letters on the dashboard: the messages whose retries ran out, with their
runs, and the buttons that requeue or delete one of them or all."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from redis.exceptions import RedisError

from jobs.dashboard.control_views import dramatiq_queue_or_404, needs
from jobs.dashboard.forms import (
    REASON_MAX_LENGTH,
    DeadLetterForm,
    cleaned_or_error,
    reason_or_error,
)
from jobs.dead_letters import queue_dead_letters, queue_delete_dead, queue_requeue_dead
from jobs.exceptions import (
    DELETE_DEAD_PERMISSION,
    REQUEUE_DEAD_PERMISSION,
    VIEW_RUNS_PERMISSION,
    UnknownDeadLetter,
)

logger = logging.getLogger("steward.dashboard")

DEAD_LETTERS_SHOWN = 100


def _dead_letters_page(name: str) -> HttpResponse:
    return HttpResponseRedirect(reverse("dashboard-dead-letters", args=[name]))


@staff_member_required
@require_GET
def dead_letters(request: HttpRequest, name: str) -> HttpResponse:
    dramatiq_queue_or_404(name)
    needs(request, VIEW_RUNS_PERMISSION, "Listing dead letters")
    try:
        total, letters = queue_dead_letters(queue=name, limit=DEAD_LETTERS_SHOWN)
        broker_error = ""
    except RedisError as exc:
        logger.warning("Dashboard could not read the dead letters of %s: %s", name, exc)
        total, letters, broker_error = 0, [], f"The broker does not answer ({exc})."
    context = {
        "queue": name,
        "total": total,
        "letters": letters,
        "broker_error": broker_error,
        "can_requeue": request.user.has_perm(REQUEUE_DEAD_PERMISSION),
        "can_delete": request.user.has_perm(DELETE_DEAD_PERMISSION),
        "reason_max_length": REASON_MAX_LENGTH,
    }
    return render(request, "dashboard/dead_letters.html", context)


@staff_member_required
@require_POST
def dead_letters_requeue(request: HttpRequest, name: str) -> HttpResponse:
    dramatiq_queue_or_404(name)
    needs(request, REQUEUE_DEAD_PERMISSION, "Requeueing dead letters")
    return _dead_letter_action(request, name, label="Requeue", service=queue_requeue_dead)


@staff_member_required
@require_POST
def dead_letters_delete(request: HttpRequest, name: str) -> HttpResponse:
    dramatiq_queue_or_404(name)
    needs(request, DELETE_DEAD_PERMISSION, "Deleting dead letters")
    return _dead_letter_action(request, name, label="Delete", service=queue_delete_dead)


def _dead_letter_action(request: HttpRequest, name: str, *, label: str, service) -> HttpResponse:
    """One dead letter (the button's message id) or all of them, requeued or deleted."""
    reason, error = reason_or_error(request.POST, default=f"{label} from the dashboard")
    values, form_error = cleaned_or_error(DeadLetterForm, request.POST)
    if error or form_error:
        messages.error(request, f"{label} in {name} was not done: {error or form_error}")
        return _dead_letters_page(name)
    message_id = values["message_id"]
    try:
        counts = service(
            queue=name,
            requested_by=request.user.get_username(),
            message_ids=[message_id] if message_id else None,
            reason=reason,
        )
    except UnknownDeadLetter as exc:
        messages.error(request, f"{label} in {name} was not done: {exc}.")
        return _dead_letters_page(name)
    except RedisError as exc:
        messages.error(
            request, f"{label} in {name} was not done: the broker does not answer ({exc})."
        )
        return _dead_letters_page(name)
    if "deleted" in counts:
        messages.success(request, f"Deleted {counts['deleted']} dead letter(s) of {name}.")
    else:
        messages.success(
            request,
            f"Requeued {counts['requeued']} dead letter(s) of {name}; "
            f"{counts['runs_retried']} as retries of their failed runs.",
        )
    return _dead_letters_page(name)
