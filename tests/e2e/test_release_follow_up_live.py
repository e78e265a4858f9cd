"""release_escrows -> check_milestones through a real `rundramatiq` worker and the Redis broker:
the worker that releases requests the milestone check for the users it touched, a worker runs
it, and both runs name each other."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import JobRun, RunStatus, Trigger
from jobs.selectors import run_follow_ups
from jobs.services import job_run_request
from ledger.models import Milestone, MilestoneKind, Notification
from ledger.services.donations import cycle_fulfil
from tests.factories import HOLD, donation_at, obligated_cycle
from tests.invariants import assert_ledger_consistent
from tests.ledger.helpers import wait_until_finished

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _follow_up_of(run: JobRun, timeout: float = 30.0) -> JobRun:
    """The follow-up a worker requested for `run`, once that one has finished too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        follow_up = JobRun.objects.filter(follow_up_of=run).first()
        if follow_up is not None:
            return wait_until_finished(follow_up, timeout=timeout)
        time.sleep(0.1)
    raise AssertionError(f"run #{run.pk} requested no follow-up within {timeout}s")


def test_a_release_by_a_worker_leads_to_a_milestone_run_linked_to_it(worker_process):
    # given a recipient whose first cycle is fulfilled, and a due escrow that pays them again
    now = timezone.now()
    cycle = obligated_cycle(due_at=now + timedelta(days=10))
    cycle_fulfil(cycle=cycle)
    escrow = donation_at(at=now - HOLD - timedelta(minutes=5), recipient=cycle.wallet).escrow

    # when the worker releases it
    release = wait_until_finished(job_run_request(job="release_escrows", trigger="api"))

    # then the release succeeded and requested the milestone check for its two users
    assert release.status == RunStatus.SUCCEEDED, release.error + worker_process.log_text()
    assert release.summary["escrows_released"] == 1
    follow_up = _follow_up_of(release)
    assert follow_up.job == "check_milestones"
    assert follow_up.trigger == Trigger.FOLLOW_UP
    assert follow_up.params == {
        "user_ids": sorted([escrow.donor.user_id, escrow.recipient.user_id])
    }
    assert follow_up.status == RunStatus.SUCCEEDED, follow_up.error + worker_process.log_text()
    assert follow_up.attempts.get().worker
    assert [run.pk for run in run_follow_ups(run=release)] == [follow_up.pk]
    # and the worker recorded the recipient's first fulfilled cycle, once, with its notification
    milestone = Milestone.objects.get()
    assert (milestone.user_id, milestone.kind, milestone.threshold) == (
        cycle.wallet.user_id,
        MilestoneKind.CYCLES_FULFILLED,
        1,
    )
    assert milestone.job_run_id == follow_up.pk
    assert Notification.objects.filter(kind="milestone_reached").count() == 1
    log = worker_process.log_text()
    assert f"Requested follow-up run #{follow_up.pk} of check_milestones" in log
    assert_ledger_consistent()


def test_a_dry_run_release_by_a_worker_requests_no_follow_up(worker_process):
    # given a due escrow
    donation_at(at=timezone.now() - HOLD - timedelta(minutes=5))

    # when the worker previews its release
    release = wait_until_finished(
        job_run_request(job="release_escrows", trigger="api", dry_run=True)
    )

    # then nothing is released and no follow-up is requested
    assert release.status == RunStatus.SUCCEEDED, release.error + worker_process.log_text()
    assert release.summary["escrows_released"] == 1
    assert not JobRun.objects.filter(follow_up_of=release).exists()
    assert not JobRun.objects.filter(job="check_milestones").exists()
