"""The parameters the ledger's jobs declare: checked by `job_run_request` before anything is
recorded, stored in their one canonical form, and scoping the lock of the jobs whose rows are
claimed with SKIP LOCKED."""

import pytest

from jobs.exceptions import InvalidInput
from jobs.models import JobRun, Schedule
from jobs.params import MAX_IDS
from jobs.services import job_run_request

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("job", "params", "field"),
    [
        ("release_escrows", {"escrow_ids": []}, "params.escrow_ids"),
        ("release_escrows", {"escrow_ids": [0]}, "params.escrow_ids"),
        ("release_escrows", {"escrow_ids": ["seven"]}, "params.escrow_ids"),
        ("release_escrows", {"escrow_ids": 7}, "params.escrow_ids"),
        ("release_escrows", {"escrow_ids": list(range(1, MAX_IDS + 2))}, "params.escrow_ids"),
        ("release_escrows", {"escrow_id": [7]}, "params.escrow_id"),
        ("expire_matches", {"match_ids": [-3]}, "params.match_ids"),
        ("expire_matches", {"escrow_ids": [3]}, "params.escrow_ids"),
        ("cycle_reminders", {"user_ids": "4,5"}, "params.user_ids"),
        ("reconcile_ledger", {"user_ids": [4]}, "params.user_ids"),
    ],
)
def test_bad_params_are_refused_with_the_field_and_nothing_is_recorded(job, params, field):
    # given no runs yet

    # when a run is requested with parameters its job does not accept
    with pytest.raises(InvalidInput) as refused:
        job_run_request(job=job, trigger="api", params=params, enqueue=False)

    # then the refusal names the parameter, and no run was recorded
    assert field in refused.value.fields
    assert refused.value.fields[field]
    assert not JobRun.objects.exists()


def test_targets_are_stored_sorted_once_each_and_scope_the_runs_lock():
    # given two requests for the same escrows, given in different orders and with a repeat
    first = job_run_request(
        job="release_escrows", trigger="api", params={"escrow_ids": [9, 4, 9]}, enqueue=False
    )
    second = job_run_request(
        job="release_escrows", trigger="api", params={"escrow_ids": ["4", 9]}, enqueue=False
    )
    sweep = job_run_request(job="release_escrows", trigger="api", enqueue=False)

    # then both store the same parameters and lock scope; the full sweep takes the whole job's
    assert first.params == second.params == {"escrow_ids": [4, 9]}
    assert first.lock_scope == second.lock_scope != ""
    assert (sweep.params, sweep.lock_scope) == ({}, "")


@pytest.mark.parametrize(
    ("job", "catches_up"),
    [
        ("release_escrows", True),
        ("expire_matches", True),
        ("cycle_reminders", True),
        ("deliver_notifications", False),
    ],
)
def test_the_default_schedules_of_the_money_jobs_run_their_latest_missed_slot(job, catches_up):
    # given the default schedules made on migrate

    # when one job's schedule is read
    schedule = Schedule.objects.get(name=job)

    # then the jobs that move money catch up a missed slot, the others skip to the next one
    assert (schedule.job, schedule.catch_up) == (job, catches_up)
