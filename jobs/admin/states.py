"""Job states in the admin: each job with its schedules and last outcome, and the actions "Run
now" and "Dry run" (with the parameters the operator gives), "Pause" and "Resume", through the
same services as the API and the dashboard, each pause and resume audited (linked from the
list)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from jobs.admin.audit import audit_link
from jobs.admin.tools import (
    JobPermissions,
    ReadOnlyAdmin,
    ReasonForm,
    next_run_text,
    nowrap,
    status_badge,
    with_form,
    with_reason,
)
from jobs.dashboard.forms import ParamsField, invalid_input_text, params_from_text, params_hint
from jobs.exceptions import InvalidInput
from jobs.fleet import run_held_back
from jobs.models import ControlAction, JobState, Trigger
from jobs.registry import all_jobs, get_job
from jobs.schedule_selectors import ScheduleOverview, schedule_overviews
from jobs.scheduling import job_pause, job_resume
from jobs.selectors import job_last_finished_run
from jobs.services import job_run_request, job_states_ensure


class RunForm(ReasonForm):
    params = ParamsField(label="Parameters")


def _schedule_line(overview: ScheduleOverview):
    schedule = overview.schedule
    url = reverse("admin:jobs_schedule_change", args=[schedule.pk])
    paused = format_html(" {}", status_badge("partial", "paused")) if not schedule.enabled else ""
    return format_html(
        '<div style="margin-bottom:4px"><a href="{}">{}</a>{}<br>{} '
        "<code style='white-space:nowrap'>{}</code> {}</div>",
        url,
        schedule.name,
        paused,
        overview.in_words,
        schedule.cron,
        schedule.timezone,
    )


@admin.register(JobState)
class JobStateAdmin(JobPermissions, ReadOnlyAdmin):
    list_display = (
        "job",
        "state",
        "schedules",
        "next_run",
        "last_outcome",
        "changed_by",
        "change_reason",
        "changed_at",
        "history",
    )
    actions = ["run_now", "dry_run", "pause", "resume"]

    def get_queryset(self, request):
        registered = [spec.name for spec in all_jobs()]
        return super().get_queryset(request).filter(job__in=registered)

    def changelist_view(self, request, extra_context=None):
        job_states_ensure()
        return super().changelist_view(request, extra_context)

    def get_changelist_instance(self, request):
        """The list's states, each given its schedules' overviews: read once for the page
        rather than once a row."""
        changelist = super().get_changelist_instance(request)
        states = {state.job: state for state in changelist.result_list}
        by_job: dict[str, list[ScheduleOverview]] = {job: [] for job in states}
        for overview in schedule_overviews(now=timezone.now(), states=states):
            by_job.get(overview.schedule.job, []).append(overview)
        for job, state in states.items():
            state.schedule_overviews = by_job[job]
        return changelist

    @admin.display(description="state")
    def state(self, state: JobState):
        return status_badge("partial", "paused") if state.paused else status_badge("", "enabled")

    @admin.display(description="schedules")
    def schedules(self, state: JobState):
        overviews = getattr(state, "schedule_overviews", [])
        if not overviews:
            return "none: it runs when asked"
        return format_html_join("", "{}", ((_schedule_line(overview),) for overview in overviews))

    @admin.display(description="next run")
    def next_run(self, state: JobState):
        # The soonest slot of its running schedules: a paused one records skipped runs.
        running = [
            overview.next_runs[0]
            for overview in getattr(state, "schedule_overviews", [])
            if overview.next_runs and not overview.paused_reason
        ]
        if not running:
            return nowrap("paused") if state.paused else "—"
        return next_run_text(min(running, key=lambda next_run: next_run.utc))

    @admin.display(description="last outcome")
    def last_outcome(self, state: JobState):
        run = job_last_finished_run(job=state.job)
        if run is None:
            return "never run"
        url = reverse("admin:jobs_jobrun_change", args=[run.pk])
        return format_html('<a href="{}">#{}</a> {}', url, run.pk, status_badge(run.status))

    @admin.display(description="history")
    def history(self, state: JobState):
        return audit_link(ControlAction.Target.JOB, state.job)

    def _enqueue(self, request, queryset, *, dry_run: bool, label: str):
        jobs = list(queryset.values_list("job", flat=True))

        def perform(data: dict) -> None:
            by = request.user.get_username()
            # Every job's parameters are checked before any run is recorded: all or none.
            requests = []
            for job in jobs:
                try:
                    requests.append((job, params_from_text(get_job(job), data["params"])))
                except InvalidInput as exc:
                    raise InvalidInput({"params": [f"{job}: {invalid_input_text(exc)}"]}) from None
            with transaction.atomic():
                runs = [
                    job_run_request(
                        job=job,
                        trigger=Trigger.ADMIN,
                        requested_by=by,
                        reason=data["reason"],
                        dry_run=dry_run,
                        params=params,
                    )
                    for job, params in requests
                ]
            for run in runs:
                self.message_user(request, f"{label}: queued {run.job} run #{run.pk}.")
                if held_back := run_held_back(run):
                    self.message_user(
                        request, f"Run #{run.pk} has not started: {held_back}.", messages.WARNING
                    )

        hints = " ".join(params_hint(get_job(job)) for job in jobs)
        return with_form(
            self,
            request,
            title=label,
            description=f"{label} of {', '.join(jobs)}. {hints}",
            perform=perform,
            form_class=RunForm,
        )

    def _set_paused(self, request, queryset, *, pause: bool):
        jobs = list(queryset.values_list("job", flat=True))
        label, service = ("Pause", job_pause) if pause else ("Resume", job_resume)

        def perform(reason: str) -> None:
            for job in jobs:
                service(job=job, by=request.user.get_username(), reason=reason)
            self.message_user(request, f"{label}d {', '.join(jobs)}.")

        skipped_note = " Their scheduled slots are recorded as skipped until resumed."
        return with_reason(
            self,
            request,
            title=label,
            description=f"{label} {', '.join(jobs)}." + (skipped_note if pause else ""),
            perform=perform,
        )

    @admin.action(description="Run now", permissions=["trigger"])
    def run_now(self, request, queryset):
        return self._enqueue(request, queryset, dry_run=False, label="Run now")

    @admin.action(description="Dry run", permissions=["trigger"])
    def dry_run(self, request, queryset):
        return self._enqueue(request, queryset, dry_run=True, label="Dry run")

    @admin.action(description="Pause", permissions=["pause"])
    def pause(self, request, queryset):
        return self._set_paused(request, queryset, pause=True)

    @admin.action(description="Resume", permissions=["pause"])
    def resume(self, request, queryset):
        return self._set_paused(request, queryset, pause=False)
