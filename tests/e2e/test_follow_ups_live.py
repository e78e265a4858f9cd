"""Follow-up runs through a real worker process and the real Redis broker: a parent run's
follow-up is requested by the worker that ran the parent, executed by a worker, and linked.

The worker needs this module's two test jobs: it imports this module after `jobs.tasks`, and
with STEWARD_TEST_FOLLOW_UP_JOBS set the module registers them and declares their actors there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework import serializers

from jobs import actors, registry
from jobs.models import JobRun, RunStatus, Trigger
from jobs.params import IdListField
from jobs.registry import FollowUp, JobSpec
from jobs.services import job_run_request
from tests.workers import WorkerProcess, subprocess_env

PARENT = "live_follow_up_parent"
FOLLOW_UP = "live_follow_up_check"
TOUCHED = [3, 5]
JOBS_FLAG = "STEWARD_TEST_FOLLOW_UP_JOBS"


class TouchedParams(serializers.Serializer):
    user_ids = IdListField(help_text="The users to look at.")


def touched_users(run) -> dict | None:
    touched = run.summary.get("touched_user_ids") or []
    return {"user_ids": touched} if touched else None


def live_specs() -> list[JobSpec]:
    """The follow-up first: the parent names it."""
    return [
        JobSpec(
            name=FOLLOW_UP,
            body=lambda context: {"users_checked": len(context.params["user_ids"])},
            cron="",
            description="Looks at the users a parent run touched (test only).",
            params=TouchedParams,
        ),
        JobSpec(
            name=PARENT,
            body=lambda context: {"touched_user_ids": TOUCHED, "changed": len(TOUCHED)},
            cron="",
            description="Touches two users (test only).",
            follow_ups=(FollowUp(FOLLOW_UP, touched_users),),
        ),
    ]


def register_live_jobs() -> None:
    for spec in live_specs():
        registry.register(spec)
        actors.actor_for(spec.name)
        actors.actor_for(spec.name, urgent=True)


if os.environ.get(JOBS_FLAG):
    # In the worker process only: the test process registers them per test (below).
    register_live_jobs()


pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


class WorkerWithTestJobs(WorkerProcess):
    """A real Dramatiq worker, as `rundramatiq` starts one, that also imports this module."""

    def launch(self) -> WorkerWithTestJobs:
        self._log = open(self.log_path, "w")  # noqa: SIM115 - kept open for the process' life
        dramatiq = str(Path(sys.executable).with_name("dramatiq"))
        self.process = subprocess.Popen(
            [
                dramatiq,
                "--path",
                ".",
                "--processes",
                "1",
                "--threads",
                "2",
                "--worker-shutdown-timeout",
                "20000",
                "django_dramatiq.setup",
                "jobs.tasks",
                __name__,
            ],
            cwd=settings.BASE_DIR,
            env=subprocess_env(
                **{JOBS_FLAG: "1"},
                DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "project.settings"),
            ),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self


@pytest.fixture
def live_jobs():
    for spec in live_specs():
        registry.register(spec)
    yield
    for spec in live_specs():
        registry._REGISTRY.pop(spec.name, None)
        actors._actors.pop(spec.actor_name, None)
        actors._actors.pop(spec.urgent_actor_name, None)


@pytest.fixture
def worker(broker, live_jobs, tmp_path):
    process = WorkerWithTestJobs(log_path=tmp_path / "worker.log")
    process.start()
    yield process
    process.stop()


def wait_for(find, *, timeout: float = 60.0, what: str, worker: WorkerProcess):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {what} after {timeout}s; worker log:\n{worker.log_text()}")


def test_a_parent_runs_follow_up_is_executed_by_the_worker_and_linked(worker):
    # given a parent job whose follow-up looks at the users it touched
    # when a run of it is sent to the worker
    parent = job_run_request(job=PARENT, trigger=Trigger.API, reason="live follow-up test")

    # then the parent succeeds on the worker and its follow-up runs there too, linked to it
    wait_for(
        lambda: JobRun.objects.filter(pk=parent.pk, status=RunStatus.SUCCEEDED).exists(),
        what="succeeded parent",
        worker=worker,
    )
    follow_up = wait_for(
        lambda: JobRun.objects.filter(
            job=FOLLOW_UP, follow_up_of=parent, status=RunStatus.SUCCEEDED
        ).first(),
        what="succeeded follow-up",
        worker=worker,
    )
    assert follow_up.trigger == Trigger.FOLLOW_UP
    assert follow_up.params == {"user_ids": TOUCHED}
    assert follow_up.summary == {"users_checked": 2}
    assert follow_up.reason == f"follow-up of {PARENT} run #{parent.pk}"
    assert follow_up.attempts.get().worker
    parent.refresh_from_db()
    assert list(parent.follow_ups.all()) == [follow_up]
    parent_lines = [line["line"] for line in parent.attempts.get().log]
    assert (
        f"Requested follow-up run #{follow_up.pk} of {FOLLOW_UP} (user_ids=[3, 5])." in parent_lines
    )
    # one follow-up, however the messages were delivered
    assert JobRun.objects.filter(job=FOLLOW_UP).count() == 1


def test_a_dry_run_on_the_worker_requests_no_follow_up(worker):
    parent = job_run_request(job=PARENT, trigger=Trigger.API, dry_run=True, reason="dry")

    wait_for(
        lambda: JobRun.objects.filter(pk=parent.pk, status=RunStatus.SUCCEEDED).exists(),
        what="succeeded dry run",
        worker=worker,
    )

    assert not JobRun.objects.filter(job=FOLLOW_UP).exists()
