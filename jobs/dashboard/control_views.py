"""The dashboard's control of the fleet: pausing, limiting and clearing queues, the rate
limits and the drain (a queue's dead letters are in `dead_letter_views`). Each view checks
its permission, parses the form, calls the one service that does it (the service audits
itself) and says what happened; the index page's sections come from `control_sections`."""

from __future__ import annotations

import dataclasses
import logging

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST
from redis.exceptions import RedisError

from jobs.audit import change_text, control_actions
from jobs.controls import (
    fleet_drain_end,
    fleet_drain_start,
    queue_concurrency_set,
    queue_pause,
    queue_resume,
    rate_limit_set,
)
from jobs.dashboard.forms import (
    ClearForm,
    ConcurrencyForm,
    RateLimitForm,
    cleaned_or_error,
    invalid_input_text,
    reason_or_error,
)
from jobs.exceptions import (
    CLEAR_QUEUE_PERMISSION,
    DRAIN_PERMISSION,
    PAUSE_QUEUE_PERMISSION,
    QUEUE_LIMITS_PERMISSION,
    VIEW_AUDIT_PERMISSION,
    VIEW_RUNS_PERMISSION,
    InvalidInput,
)
from jobs.fleet import (
    controlled_queues,
    fleet_draining,
    queue_controls,
    queue_overviews,
    rate_limit_names,
    rate_limit_overviews,
)
from jobs.queues import queue_clear, queue_names
from jobs.run_selectors import Percentiles, queue_wait_stats

logger = logging.getLogger("steward.dashboard")

AUDIT_SHOWN = 10


@dataclasses.dataclass(frozen=True)
class QueueGroup:
    """A controlled queue, its controls, and its lanes (the Dramatiq queues with their
    counts; none when the broker does not answer), with how long its messages wait for a
    worker (None for a queue no job uses)."""

    queue: str
    paused: bool
    concurrency: int | None
    concurrency_source: str
    rate_limit: tuple[int, int] | None
    lanes: list
    wait: Percentiles | None = None


def _queue_groups() -> tuple[list[QueueGroup], str]:
    waits = {stats.queue: stats.wait for stats in queue_wait_stats()}
    try:
        overviews = queue_overviews()
    except RedisError as exc:
        logger.warning("Dashboard could not read queue statistics: %s", exc)
        # The controls live in the database: show them, without counts.
        groups = [
            QueueGroup(
                c.queue,
                c.paused,
                c.concurrency,
                c.concurrency_source,
                c.rate_limit,
                [],
                waits.get(c.queue),
            )
            for c in queue_controls().values()
        ]
        return groups, f"The broker does not answer ({exc})."
    groups: dict[str, QueueGroup] = {}
    for lane in overviews:
        if lane.queue not in groups:
            groups[lane.queue] = QueueGroup(
                lane.queue,
                lane.paused,
                lane.concurrency,
                lane.concurrency_source,
                lane.rate_limit,
                [],
                waits.get(lane.queue),
            )
        groups[lane.queue].lanes.append(lane)
    return list(groups.values()), ""


def control_sections(user) -> dict:
    """The index page's queues, rate limits, drain and recent control actions, with the
    buttons the user may press."""
    groups, queue_error = _queue_groups()
    can_view_audit = user.has_perm(VIEW_AUDIT_PERMISSION)
    return {
        "queue_groups": groups,
        "queue_error": queue_error,
        "rate_limits": rate_limit_overviews(),
        "draining": fleet_draining(),
        "control_actions": [
            {"entry": entry, "change": change_text(entry.before, entry.after)}
            for entry in control_actions()[:AUDIT_SHOWN]
        ]
        if can_view_audit
        else [],
        "can_view_audit": can_view_audit,
        "can_pause_queues": user.has_perm(PAUSE_QUEUE_PERMISSION),
        "can_limit_queues": user.has_perm(QUEUE_LIMITS_PERMISSION),
        "can_clear_queues": user.has_perm(CLEAR_QUEUE_PERMISSION),
        "can_view_dead_letters": user.has_perm(VIEW_RUNS_PERMISSION),
        "can_drain": user.has_perm(DRAIN_PERMISSION),
    }


def needs(request: HttpRequest, permission: str, what: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"{what} needs the {permission} permission.")


def _controlled_queue_or_404(name: str) -> str:
    if name not in controlled_queues():
        raise Http404(f"no queue {name!r}; queues: {', '.join(controlled_queues())}")
    return name


def dramatiq_queue_or_404(name: str) -> str:
    """A queue or one of its lanes, as dead letters and clearing take them."""
    if name not in queue_names():
        raise Http404(f"no queue {name!r}; queues: {', '.join(queue_names())}")
    return name


def _back_to(section: str) -> HttpResponse:
    return HttpResponseRedirect(f"{reverse('dashboard')}#{section}")


@staff_member_required
@require_POST
def queue_action(request: HttpRequest, name: str) -> HttpResponse:
    """Pause or resume a queue (both of its lanes)."""
    _controlled_queue_or_404(name)
    needs(request, PAUSE_QUEUE_PERMISSION, "Pausing or resuming a queue")
    action = request.POST.get("action", "")
    if action not in ("pause", "resume"):
        messages.error(request, f"Unknown action {action!r}.")
        return _back_to("queues")
    label = action.capitalize()
    reason, error = reason_or_error(request.POST, default=f"{label} from the dashboard")
    if error:
        messages.error(request, f"{label} of queue {name} was not done: {error}")
        return _back_to("queues")
    service = queue_pause if action == "pause" else queue_resume
    service(queue=name, by=request.user.get_username(), reason=reason)
    if action == "pause":
        messages.success(request, f"Queue {name} paused: no worker starts its messages.")
    else:
        messages.success(request, f"Queue {name} resumed.")
    return _back_to("queues")


@staff_member_required
@require_POST
def queue_concurrency(request: HttpRequest, name: str) -> HttpResponse:
    _controlled_queue_or_404(name)
    needs(request, QUEUE_LIMITS_PERMISSION, "Changing a queue's concurrency")
    reason, error = reason_or_error(request.POST, default="Concurrency from the dashboard")
    values, form_error = cleaned_or_error(ConcurrencyForm, request.POST)
    if error or form_error:
        messages.error(request, f"Concurrency of {name} was not changed: {error or form_error}")
        return _back_to("queues")
    concurrency = values["concurrency"]
    try:
        queue_concurrency_set(
            queue=name, concurrency=concurrency, by=request.user.get_username(), reason=reason
        )
    except InvalidInput as exc:
        messages.error(request, f"Concurrency of {name} was not changed: {invalid_input_text(exc)}")
        return _back_to("queues")
    if concurrency is None:
        messages.success(request, f"Concurrency of {name} is back to its default.")
    else:
        messages.success(request, f"Concurrency of {name} set to {concurrency} across the fleet.")
    return _back_to("queues")


@staff_member_required
@require_POST
def queue_clear_view(request: HttpRequest, name: str) -> HttpResponse:
    dramatiq_queue_or_404(name)
    needs(request, CLEAR_QUEUE_PERMISSION, "Clearing a queue")
    reason, error = reason_or_error(request.POST, default="Clear from the dashboard")
    values, form_error = cleaned_or_error(ClearForm, request.POST)
    if error or form_error:
        messages.error(request, f"Queue {name} was not cleared: {error or form_error}")
        return _back_to("queues")
    try:
        counts = queue_clear(
            queue=name,
            requested_by=request.user.get_username(),
            confirm=values["confirm"],
            reason=reason,
        )
    except InvalidInput as exc:
        messages.error(request, f"Queue {name} was not cleared: {invalid_input_text(exc)}")
        return _back_to("queues")
    except RedisError as exc:
        messages.error(
            request, f"Queue {name} was not cleared: the broker does not answer ({exc})."
        )
        return _back_to("queues")
    messages.success(
        request,
        f"Queue {name} cleared: {counts['messages']} message(s) dropped, "
        f"{counts['runs_cancelled']} run(s) cancelled.",
    )
    return _back_to("queues")


@staff_member_required
@require_POST
def rate_limit_action(request: HttpRequest, name: str) -> HttpResponse:
    """Set a rate limit, or reset it to the environment's."""
    if name not in rate_limit_names():
        raise Http404(f"no rate limit {name!r}; rate limits: {', '.join(rate_limit_names())}")
    needs(request, QUEUE_LIMITS_PERMISSION, "Changing a rate limit")
    action = request.POST.get("action", "")
    if action not in ("set", "reset"):
        messages.error(request, f"Unknown action {action!r}.")
        return _back_to("rate-limits")
    reason, error = reason_or_error(request.POST, default="Rate limit from the dashboard")
    values, form_error = (
        cleaned_or_error(RateLimitForm, request.POST)
        if action == "set"
        else ({"limit": None, "window_seconds": None}, "")
    )
    if error or form_error:
        messages.error(request, f"Rate limit {name} was not changed: {error or form_error}")
        return _back_to("rate-limits")
    try:
        in_force = rate_limit_set(
            name=name, **values, by=request.user.get_username(), reason=reason
        )
    except InvalidInput as exc:
        messages.error(request, f"Rate limit {name} was not changed: {invalid_input_text(exc)}")
        return _back_to("rate-limits")
    shown = f"{in_force[0]:,} per {in_force[1]:,} s" if in_force else "no limit"
    done = "set to" if action == "set" else "back to its default:"
    messages.success(request, f"Rate limit {name} {done} {shown}.")
    return _back_to("rate-limits")


@staff_member_required
@require_POST
def fleet_drain(request: HttpRequest) -> HttpResponse:
    """Start or end the drain of every worker."""
    needs(request, DRAIN_PERMISSION, "Draining the fleet")
    action = request.POST.get("action", "")
    if action not in ("start", "end"):
        messages.error(request, f"Unknown action {action!r}.")
        return _back_to("fleet")
    label = "Drain" if action == "start" else "End of the drain"
    reason, error = reason_or_error(request.POST, default=f"{label} from the dashboard")
    if error:
        messages.error(request, f"{label} was not done: {error}")
        return _back_to("fleet")
    service = fleet_drain_start if action == "start" else fleet_drain_end
    service(by=request.user.get_username(), reason=reason)
    if action == "start":
        messages.success(
            request, "The fleet is draining: no worker takes a new message; runs under way finish."
        )
    else:
        messages.success(request, "The drain is over: workers take messages again.")
    return _back_to("fleet")
