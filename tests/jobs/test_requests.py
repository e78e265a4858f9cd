"""Every surface and the scheduler record runs through `job_run_request`: each run carries its
trigger, who asked, why, and the code version, the scheduler's paused slots included."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jobs.actors import actor_for
from jobs.conf import conf
from jobs.dead_letters import queue_requeue_dead
from jobs.models import JobRun, RunStatus, Trigger
from jobs.schedules import schedule_create
from jobs.scheduling import job_pause, schedules_tick
from jobs.services import job_run_request
from tests.api.helpers import PAUSE, RETRY, TRIGGER, finished_run, token_client, user_with
from tests.scheduling.test_queues import dead_letter_one

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(register_test_job):
    """A test-registered job whose body does nothing; its runs go to the default queue."""
    return register_test_job(lambda context: {"items_done": 0}).name


@pytest.fixture
def code_version(settings):
    settings.STEWARD_CODE_VERSION = "rev-under-test"
    return "rev-under-test"


def assert_recorded(run: JobRun, *, trigger: str, by: str, why: str, version: str) -> None:
    assert (run.trigger, run.requested_by, run.reason, run.code_version) == (
        trigger,
        by,
        why,
        version,
    )


def test_the_code_version_comes_from_the_engine_settings(job, code_version):
    assert code_version == conf.CODE_VERSION


def test_the_api_records_its_run(job, code_version, broker):
    operator = user_with(TRIGGER)
    response = token_client(operator).post(
        f"/api/v1/jobs/{job}/trigger", {"reason": "from the api"}, format="json"
    )
    assert response.status_code == 202
    run = JobRun.objects.get()
    assert_recorded(
        run, trigger=Trigger.API, by=operator.username, why="from the api", version=code_version
    )
    assert run.message_id


def test_an_api_retry_records_its_run(job, code_version, broker):
    operator = user_with(RETRY)
    failed = finished_run(job, status=RunStatus.FAILED, error="boom")
    response = token_client(operator).post(
        f"/api/v1/runs/{failed.pk}/retry", {"reason": "fixed"}, format="json"
    )
    assert response.status_code == 202
    retry = JobRun.objects.get(retry_of=failed)
    assert_recorded(
        retry, trigger=Trigger.RETRY, by=operator.username, why="fixed", version=code_version
    )


def test_an_admin_action_records_its_run(job, code_version, broker):
    operator = user_with("jobs.view_jobstate", TRIGGER)
    client = Client()
    client.force_login(operator)
    states = reverse("admin:jobs_jobstate_changelist")
    client.get(states)
    client.post(
        states,
        {
            "action": "run_now",
            "_selected_action": [job],
            "apply": "1",
            "reason": "from the admin",
        },
    )
    run = JobRun.objects.get()
    assert_recorded(
        run, trigger=Trigger.ADMIN, by=operator.username, why="from the admin", version=code_version
    )


def test_a_dashboard_button_records_its_run(job, code_version, broker):
    operator = user_with(TRIGGER, PAUSE)
    client = Client()
    client.force_login(operator)
    client.post(
        reverse("dashboard-job-action", args=[job]),
        {"action": "run", "reason": "from the dashboard"},
    )
    run = JobRun.objects.get()
    assert_recorded(
        run,
        trigger=Trigger.ADMIN,
        by=operator.username,
        why="from the dashboard",
        version=code_version,
    )


@pytest.mark.parametrize("where", [[], ["--enqueue"]])
def test_runjob_records_its_run_in_process_and_enqueued(job, code_version, broker, where):
    call_command("runjob", job, "--reason", "from the cli", *where, stdout=StringIO())
    run = JobRun.objects.get()
    assert_recorded(run, trigger=Trigger.CLI, by="cli", why="from the cli", version=code_version)
    assert run.is_finished is (not where)


@pytest.mark.parametrize("paused", [False, True])
def test_the_scheduler_records_its_slots_paused_ones_included(job, code_version, broker, paused):
    schedule = schedule_create(by="ops", name="every-minute", job=job, cron="* * * * *")
    if paused:
        job_pause(job=job, by="ops", reason="maintenance")
    slot = timezone.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    (run,) = [run for run in schedules_tick(now=slot).recorded if run.schedule_id == schedule.pk]
    assert_recorded(
        run,
        trigger=Trigger.SCHEDULE,
        by="scheduler",
        why="schedule every-minute",
        version=code_version,
    )
    assert (run.slot, run.schedule_id) == (slot, schedule.pk)
    assert run.status == (RunStatus.SKIPPED if paused else RunStatus.QUEUED)
    assert bool(run.message_id) is (not paused)


def test_a_requeued_dead_letter_records_its_retry(job, code_version, broker):
    failed = job_run_request(job=job, trigger=Trigger.CLI, enqueue=False)
    JobRun.objects.filter(pk=failed.pk).update(status=RunStatus.FAILED, error="boom")
    actor_for(job).send(failed.pk)
    dead_letter_one(broker, "default")

    queue_requeue_dead(queue="default", requested_by="ops")

    retry = JobRun.objects.get(retry_of=failed)
    assert_recorded(
        retry,
        trigger=Trigger.RETRY,
        by="ops",
        why="requeued from the default dead-letter queue",
        version=code_version,
    )


def test_a_retry_of_a_run_that_did_not_fail_is_refused_and_records_nothing(job, code_version):
    from jobs.exceptions import RunNotRetryable

    succeeded = finished_run(job, status=RunStatus.SUCCEEDED)
    with pytest.raises(RunNotRetryable, match="only failed runs are retried"):
        job_run_request(
            job=succeeded.job, trigger=Trigger.RETRY, retry_of=succeeded, requested_by="ops"
        )
    assert JobRun.objects.count() == 1
