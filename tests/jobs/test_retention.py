"""prune_job_runs: the engine's own retention of finished runs, registered by the engine."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import JobRun, JobRunAttempt
from jobs.registry import get_job
from tests.leaderboard.factories import MONDAY, finished_run
from tests.ledger.helpers import run_job

AS_OF = MONDAY + timedelta(hours=3)
DAY = timedelta(days=1)


def test_the_engine_registers_its_own_retention_job():
    spec = get_job("prune_job_runs")
    assert spec.body.__module__ == "jobs.retention"


@pytest.mark.django_db
def test_finished_runs_are_pruned_by_their_retention_with_their_shards_and_attempts():
    # given finished runs on both sides of the 30-day (and, for failures, 90-day) retention,
    # one with a shard, and notifications on both sides of the 30-day retention
    old_ok = finished_run(job="release_escrows", status="succeeded", finished_at=AS_OF - 31 * DAY)
    JobRunAttempt.objects.create(run=old_ok, number=1, started_at=old_ok.started_at)
    shard = finished_run(
        job="release_escrows",
        status="succeeded",
        finished_at=AS_OF - 31 * DAY,
        parent=old_ok,
        shard={"index": 0, "pk_from": 1, "pk_to": None},
    )
    kept = {
        finished_run(job="cleanup", status="succeeded", finished_at=AS_OF - 29 * DAY).pk,
        finished_run(job="cleanup", status="failed", finished_at=AS_OF - 31 * DAY).pk,
        finished_run(job="cleanup", status="partial", finished_at=AS_OF - 89 * DAY).pk,
    }
    old_failed = finished_run(job="cleanup", status="failed", finished_at=AS_OF - 91 * DAY)
    old_skipped = finished_run(job="cleanup", status="skipped", finished_at=AS_OF - 31 * DAY)

    # when the engine prunes
    run = run_job("prune_job_runs", as_of=AS_OF)

    # then only the expired runs (the shard and attempts with their parent) are gone
    gone = {old_ok.pk, shard.pk, old_failed.pk, old_skipped.pk}
    assert not JobRun.objects.filter(pk__in=gone).exists()
    assert not JobRunAttempt.objects.filter(run_id=old_ok.pk).exists()
    assert kept | {run.pk} <= set(JobRun.objects.values_list("pk", flat=True))
    assert run.summary["job_runs_deleted"] == 4


@pytest.mark.django_db
def test_a_dry_run_deletes_nothing_and_predicts_the_real_run():
    finished_run(job="cleanup", status="succeeded", finished_at=AS_OF - 40 * DAY)

    dry = run_job("prune_job_runs", as_of=AS_OF, dry_run=True)
    assert JobRun.objects.filter(job="cleanup").exists()

    real = run_job("prune_job_runs", as_of=AS_OF)
    assert dry.summary["job_runs_deleted"] == real.summary["job_runs_deleted"] == 1


@pytest.mark.django_db
def test_pruning_never_touches_the_run_doing_it():
    # given nothing but the runs the clock has just made
    now = timezone.now()

    # when the engine prunes far in the future
    run = run_job("prune_job_runs", as_of=now + 365 * DAY)

    # then its own (unfinished while it ran) record is still there
    assert JobRun.objects.filter(pk=run.pk).exists()
