"""The whole path through a real `rundramatiq` worker process and the real Redis broker."""

import subprocess
import sys

import pytest
from django.conf import settings
from django.utils import timezone

from jobs.models import JobRun, RunStatus, Trigger
from ledger.models import Escrow
from ledger.statuses import EscrowStatus
from tests.factories import HOLD, donation_at
from tests.workers import subprocess_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_runjob_enqueue_wait_releases_escrows_through_a_real_worker(worker_process):
    # given three escrows past their hold and one still holding
    now = timezone.now()
    due = [donation_at(at=now - HOLD - timezone.timedelta(minutes=5)) for _ in range(3)]
    held = donation_at(at=now - HOLD + timezone.timedelta(minutes=5))

    # when the CLI sends the job to the worker and waits for it
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "runjob",
            "release_escrows",
            "--enqueue",
            "--wait",
            "--timeout",
            "60",
            "--reason",
            "end-to-end test",
        ],
        cwd=settings.BASE_DIR,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )

    # then the run succeeded on the worker and released exactly the due escrows
    assert result.returncode == 0, result.stdout + result.stderr + worker_process.log_text()
    run = JobRun.objects.get(job="release_escrows")
    assert run.status == RunStatus.SUCCEEDED
    assert run.trigger == Trigger.CLI
    assert run.reason == "end-to-end test"
    assert run.summary["escrows_released"] == 3
    assert run.attempts.get().worker
    assert run.message_id
    statuses = dict(Escrow.objects.values_list("donation_id", "status"))
    assert all(statuses[d.pk] == EscrowStatus.RELEASED for d in due)
    assert statuses[held.pk] == EscrowStatus.HOLDING
    assert f"release_escrows run #{run.pk}: succeeded" in result.stdout
