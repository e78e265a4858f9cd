"""Schedule ticks and runtime control: every write about when and whether jobs run."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.cron import slot_of
from jobs.models import JobRun, JobState, RunStatus, Trigger
from jobs.registry import get_job
from jobs.services import job_run_request

logger = logging.getLogger("steward.schedule")

SCHEDULER = "scheduler"


def _locked_state(job: str) -> JobState:
    """The job's state row, created on first use and locked for this transaction."""
    get_job(job)
    JobState.objects.bulk_create([JobState(job=job)], ignore_conflicts=True)
    return JobState.objects.select_for_update().get(job=job)


@transaction.atomic
def job_pause(*, job: str, by: str, reason: str = "") -> JobState:
    """Pause a job: its ticks are recorded as skipped until it is resumed."""
    return _set_paused(job=job, paused=True, by=by, reason=reason)


@transaction.atomic
def job_resume(*, job: str, by: str, reason: str = "") -> JobState:
    return _set_paused(job=job, paused=False, by=by, reason=reason)


def _set_paused(*, job: str, paused: bool, by: str, reason: str) -> JobState:
    state = _locked_state(job)
    if state.paused != paused:
        state.paused = paused
        state.changed_by = by
        state.change_reason = reason
        state.changed_at = timezone.now()
        state.save(update_fields=["paused", "changed_by", "change_reason", "changed_at"])
        logger.warning(
            "Job %s %s by %s%s",
            job,
            "paused" if paused else "resumed",
            by,
            f": {reason}" if reason else "",
        )
    return state


@transaction.atomic
def schedule_tick(*, job: str, scheduled_at: datetime) -> JobRun | None:
    """Record the run of the tick's slot and send it; a slot already recorded is left alone.

    The unique (job, slot) constraint is what makes a second scheduler, a restart in the same
    minute or a duplicated tick message harmless.
    """
    slot = slot_of(scheduled_at)
    state = _locked_state(job)
    paused_reason = ""
    if state.paused:
        paused_reason = f"job paused by {state.changed_by or 'an operator'}" + (
            f": {state.change_reason}" if state.change_reason else ""
        )
    try:
        with transaction.atomic():
            run = job_run_request(
                job=job,
                trigger=Trigger.SCHEDULE,
                requested_by=SCHEDULER,
                as_of=slot,
                slot=slot,
                skipped_reason=paused_reason,
            )
    except IntegrityError:
        logger.info(
            "Slot %s of %s is already recorded; ignoring a repeated tick.", slot.isoformat(), job
        )
        return None
    if state.last_slot is None or slot > state.last_slot:
        state.last_slot = slot
        state.save(update_fields=["last_slot"])
    if run.status == RunStatus.SKIPPED:
        logger.info(
            "Slot %s of %s recorded as skipped: %s", slot.isoformat(), job, run.status_reason
        )
    else:
        logger.debug("Slot %s of %s recorded as run #%s and sent.", slot.isoformat(), job, run.pk)
    return run
