"""Queues in the admin: every controlled queue with its lanes' message counts, whether it is
paused, its fleet-wide concurrency and rate limit, and the actions Pause, Resume, Set
concurrency and Clear; the fleet's drain at the top of the list. Every action asks a reason and
calls the same service as the API (`jobs.controls`, `jobs.queues`), which audits it."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from redis.exceptions import RedisError

from jobs.admin.audit import audit_link
from jobs.admin.dead_letters import dead_letters_view
from jobs.admin.drain import drain_view
from jobs.admin.tools import (
    MUTED,
    JobPermissions,
    ReadOnlyAdmin,
    ReasonForm,
    nowrap,
    refusal_text,
    status_badge,
    with_form,
    with_reason,
)
from jobs.controls import (
    CONCURRENCY_MAX,
    queue_concurrency_set,
    queue_pause,
    queue_resume,
)
from jobs.exceptions import DRAIN_PERMISSION
from jobs.fleet import QueueOverview, controlled_queues, fleet_draining, queue_overviews
from jobs.lanes import lane_queue
from jobs.models import ControlAction, QueueState
from jobs.queues import queue_clear, queue_names

LANE_ROW = (
    "<tr><td style='padding:0 .8em 0 0;border:0'>{}</td>"
    "<td style='padding:0 .8em 0 0;border:0'>{}</td>"
    "<td style='padding:0 .8em 0 0;border:0'>{}</td>"
    "<td style='padding:0 .8em 0 0;border:0'>{}</td>"
    "<td style='padding:0;border:0'>{}</td></tr>"
)
LANE_HEAD = (
    "<tr style='color:#6e7781'><td style='padding:0 .8em 0 0;border:0'>lane</td>"
    "<td style='padding:0 .8em 0 0;border:0'>waiting</td>"
    "<td style='padding:0 .8em 0 0;border:0'>delayed</td>"
    "<td style='padding:0 .8em 0 0;border:0'>in flight</td>"
    "<td style='padding:0;border:0'>dead</td></tr>"
)


class ConcurrencyForm(ReasonForm):
    concurrency = forms.IntegerField(
        required=False,
        widget=forms.TextInput(attrs={"size": 8}),
        help_text=f"The most runs of the queue executing at once across the fleet, 1 to "
        f"{CONCURRENCY_MAX:,}. Empty: back to STEWARD_QUEUE_<NAME>_CONCURRENCY, or no limit.",
    )
    field_order = ["concurrency", "reason"]


class ClearForm(ReasonForm):
    confirm = forms.CharField(
        label="Queue name",
        max_length=64,
        help_text="Type the queue's name to confirm: its waiting and delayed messages (both "
        "lanes) are dropped for good and their runs cancelled.",
    )
    field_order = ["confirm", "reason"]


def _lanes_of(queue: str) -> list[str]:
    """The Dramatiq queues of a controlled queue: itself, and its urgent lane if it has one."""
    urgent = lane_queue(queue, urgent=True)
    return [queue, urgent] if urgent in queue_names() else [queue]


@admin.register(QueueState)
class QueueStateAdmin(JobPermissions, ReadOnlyAdmin):
    list_display = ("queue", "state", "lanes", "concurrency_text", "rate_limit_text", "history")
    list_display_links = None
    actions = ["pause", "resume", "set_concurrency", "clear"]
    change_list_template = "admin/steward/queue_change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).filter(queue__in=controlled_queues())

    def changelist_view(self, request, extra_context=None):
        # Every controlled queue is listed, those never changed too.
        for queue in controlled_queues():
            QueueState.objects.get_or_create(queue=queue)
        context = {
            "draining": fleet_draining(),
            "can_drain": request.user.has_perm(DRAIN_PERMISSION),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def get_changelist_instance(self, request):
        """The list's queues, each given its lanes' counts and its controls: Redis and the
        controls are read once for the page."""
        changelist = super().get_changelist_instance(request)
        try:
            overviews = queue_overviews()
        except RedisError as exc:
            overviews = []
            self.message_user(request, refusal_text(exc), messages.WARNING)
        by_queue: dict[str, list[QueueOverview]] = {}
        for overview in overviews:
            by_queue.setdefault(overview.queue, []).append(overview)
        for state in changelist.result_list:
            state.overviews = by_queue.get(state.queue, [])
        return changelist

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "dead-letters/<str:name>/",
                wrap(lambda request, name: dead_letters_view(self, request, name)),
                name="jobs_queuestate_dead_letters",
            ),
            path(
                "drain/start/",
                wrap(lambda request: drain_view(self, request, start=True)),
                name="jobs_queuestate_drain_start",
            ),
            path(
                "drain/end/",
                wrap(lambda request: drain_view(self, request, start=False)),
                name="jobs_queuestate_drain_end",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="state")
    def state(self, state: QueueState):
        return status_badge("partial", "paused") if state.paused else status_badge("", "running")

    @admin.display(description="messages")
    def lanes(self, state: QueueState):
        overviews = getattr(state, "overviews", [])
        if not overviews:
            return "—"
        rows = format_html_join(
            "",
            LANE_ROW,
            (
                (
                    overview.lane,
                    nowrap(f"{overview.waiting:,}"),
                    nowrap(f"{overview.delayed:,}"),
                    nowrap(f"{overview.in_flight:,}"),
                    self._dead_link(overview),
                )
                for overview in overviews
            ),
        )
        return format_html(
            "<table style='width:auto;margin:0'>{}{}</table>", mark_safe(LANE_HEAD), rows
        )

    def _dead_link(self, overview: QueueOverview):
        url = reverse("admin:jobs_queuestate_dead_letters", args=[overview.name])
        return format_html('<a href="{}">{}</a>', url, f"{overview.dead_lettered:,}")

    def _overview(self, state: QueueState) -> QueueOverview | None:
        overviews = getattr(state, "overviews", [])
        return overviews[0] if overviews else None

    @admin.display(description="concurrency")
    def concurrency_text(self, state: QueueState):
        overview = self._overview(state)
        if overview is None:
            return state.concurrency or "—"
        if overview.concurrency is None:
            return "no limit"
        return format_html("{}" + MUTED, overview.concurrency, overview.concurrency_source)

    @admin.display(description="rate limit")
    def rate_limit_text(self, state: QueueState):
        overview = self._overview(state)
        if overview is None or overview.rate_limit is None:
            return "no limit" if overview else "—"
        limit, window = overview.rate_limit
        return nowrap(f"{limit:,} per {window:,} s")

    @admin.display(description="history")
    def history(self, state: QueueState):
        return audit_link(ControlAction.Target.QUEUE, state.queue)

    def _set_paused(self, request, queryset, *, pause: bool):
        queues = list(queryset.values_list("queue", flat=True))
        label, service = ("Pause", queue_pause) if pause else ("Resume", queue_resume)

        def perform(reason: str) -> None:
            with transaction.atomic():
                for queue in queues:
                    service(queue=queue, by=request.user.get_username(), reason=reason)
            self.message_user(request, f"{label}d {', '.join(queues)}.")

        effect = (
            "No worker starts a message of theirs (either lane) from a second or two on; "
            "their messages stay where they are."
            if pause
            else "Workers take their messages again."
        )
        return with_reason(
            self,
            request,
            title=f"{label} queues",
            description=f"{label} {', '.join(queues)}. {effect}",
            perform=perform,
        )

    @admin.action(description="Pause", permissions=["pause_queue"])
    def pause(self, request, queryset):
        return self._set_paused(request, queryset, pause=True)

    @admin.action(description="Resume", permissions=["pause_queue"])
    def resume(self, request, queryset):
        return self._set_paused(request, queryset, pause=False)

    @admin.action(description="Set concurrency", permissions=["queue_limits"])
    def set_concurrency(self, request, queryset):
        queues = list(queryset.values_list("queue", flat=True))

        def perform(data: dict) -> None:
            concurrency = data["concurrency"]
            with transaction.atomic():
                for queue in queues:
                    queue_concurrency_set(
                        queue=queue,
                        concurrency=concurrency,
                        by=request.user.get_username(),
                        reason=data["reason"],
                    )
            shown = "the default" if concurrency is None else f"{concurrency:,}"
            self.message_user(request, f"Set the concurrency of {', '.join(queues)} to {shown}.")

        return with_form(
            self,
            request,
            title="Set concurrency",
            description=f"The fleet-wide concurrency of {', '.join(queues)}.",
            perform=perform,
            form_class=ConcurrencyForm,
        )

    @admin.action(description="Clear", permissions=["clear_queue"])
    def clear(self, request, queryset):
        queues = list(queryset.values_list("queue", flat=True))
        if len(queues) != 1:
            self.message_user(request, "Clear one queue at a time.", messages.ERROR)
            return None
        queue = queues[0]

        def perform(data: dict) -> None:
            # The service checks the typed name against the queue; its urgent lane goes with it.
            dropped = queue_clear(
                queue=queue,
                requested_by=request.user.get_username(),
                confirm=data["confirm"],
                reason=data["reason"],
            )
            self.message_user(
                request,
                f"Cleared {queue}: {dropped['messages']} message(s) dropped, "
                f"{dropped['runs_cancelled']} run(s) cancelled.",
            )

        return with_form(
            self,
            request,
            title=f"Clear {queue}",
            description=f"Drops every waiting and delayed message of {queue} "
            f"({', '.join(_lanes_of(queue))}) and cancels their runs. Runs executing keep "
            "going; dead letters stay.",
            perform=perform,
            form_class=ClearForm,
        )
