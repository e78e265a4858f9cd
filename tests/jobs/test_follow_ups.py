"""Follow-up runs: requested once a run ends succeeded having changed something, linked to it on
every surface, never failing it; and the follow-up graph checked at start-up."""

import contextlib
import dataclasses
import importlib
import json
import logging

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from rest_framework import serializers

from jobs import registry, tasks
from jobs.fanout import FanOut, fan_out_finish
from jobs.follow_ups import follow_up_errors, follow_ups_request, follow_ups_validate
from jobs.models import JobRun, RunStatus, Trigger
from jobs.params import IdListField
from jobs.registry import FollowUp
from jobs.runner import job_run_execute
from jobs.services import job_run_request
from tests.api.helpers import token_client, user_with

pytestmark = pytest.mark.django_db


class BodyFailed(Exception):
    pass


class TouchedParams(serializers.Serializer):
    user_ids = IdListField(help_text="The users to look at.")


def touched_users(run: JobRun) -> dict | None:
    """What the parent's summary says it touched; None when it changed nothing."""
    touched = run.summary.get("touched_user_ids") or []
    return {"user_ids": touched} if touched else None


@pytest.fixture
def follow_up_job(register_test_job):
    """A follow-up job taking user_ids, recording what it was given."""

    def body(context):
        return {"users_checked": len(context.params["user_ids"])}

    return register_test_job(body, params=TouchedParams)


@pytest.fixture
def touched():
    """The users the parent job's runs touch: emptied, a run changes nothing."""
    return [4, 9]


@pytest.fixture
def parent_job(register_test_job, follow_up_job, touched):
    """A job whose runs touch the `touched` users; its follow-up is `follow_up_job` for them."""

    def body(context):
        return {"touched_user_ids": list(touched), "changed": len(touched)}

    return register_test_job(body, follow_ups=(FollowUp(follow_up_job.name, touched_users),))


def run_now(job: str, **fields) -> JobRun:
    run = job_run_request(enqueue=False, job=job, trigger=Trigger.CLI, **fields)
    job_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def log_lines(run: JobRun) -> list[str]:
    return [line["line"] for attempt in run.attempts.all() for line in attempt.log]


# --- Requesting ---------------------------------------------------------------------------------


def test_a_succeeded_run_requests_its_follow_up_linked_to_it(parent_job, follow_up_job):
    # given a job whose follow-up looks at the users its runs touch
    # when a run of it succeeds having touched users 4 and 9
    parent = run_now(parent_job.name)

    # then one follow-up run is recorded for exactly those users, linked to its parent
    assert parent.status == RunStatus.SUCCEEDED
    follow_up = JobRun.objects.get(job=follow_up_job.name)
    assert follow_up.follow_up_of == parent
    assert follow_up.trigger == Trigger.FOLLOW_UP
    assert follow_up.params == {"user_ids": [4, 9]}
    assert follow_up.reason == f"follow-up of {parent_job.name} run #{parent.pk}"
    assert follow_up.requested_by == f"{parent_job.name} run #{parent.pk}"
    assert follow_up.status == RunStatus.QUEUED
    assert follow_up.message_id
    assert list(parent.follow_ups.all()) == [follow_up]
    # and the parent's own log says which run it requested
    assert (
        f"Requested follow-up run #{follow_up.pk} of {follow_up_job.name} (user_ids=[4, 9])."
        in log_lines(parent)
    )

    # when a worker executes the follow-up, it does its work
    assert job_run_execute(run_id=follow_up.pk).status == RunStatus.SUCCEEDED
    follow_up.refresh_from_db()
    assert follow_up.summary == {"users_checked": 2}


def test_a_dry_run_requests_no_follow_up(parent_job, follow_up_job):
    parent = run_now(parent_job.name, dry_run=True)

    assert parent.status == RunStatus.SUCCEEDED
    assert not JobRun.objects.filter(job=follow_up_job.name).exists()


def test_a_run_that_changed_nothing_requests_no_follow_up(parent_job, follow_up_job, touched):
    touched.clear()

    parent = run_now(parent_job.name)

    assert parent.status == RunStatus.SUCCEEDED
    assert not JobRun.objects.filter(job=follow_up_job.name).exists()
    assert not any("follow-up" in line for line in log_lines(parent))


@pytest.mark.parametrize("outcome", [RunStatus.PARTIAL, RunStatus.FAILED])
def test_a_partial_or_failed_run_requests_no_follow_up(register_test_job, follow_up_job, outcome):
    # given a job that touched users but ended partial, or failed
    def body(context):
        if outcome == RunStatus.FAILED:
            raise BodyFailed("the bank is down")
        context.mark_partial("one user could not be touched")
        return {"touched_user_ids": [4]}

    spec = register_test_job(body, follow_ups=(FollowUp(follow_up_job.name, touched_users),))

    # when it runs
    run = job_run_request(enqueue=False, job=spec.name, trigger=Trigger.CLI)
    with contextlib.suppress(BodyFailed):
        job_run_execute(run_id=run.pk)

    # then it ended as it did and requested nothing
    run.refresh_from_db()
    assert run.status == outcome
    assert not JobRun.objects.filter(job=follow_up_job.name).exists()


def test_a_failing_follow_up_leaves_its_parent_succeeded(register_test_job):
    # given a follow-up whose body raises
    def failing(context):
        raise BodyFailed("the follow-up broke")

    broken = register_test_job(failing, params=TouchedParams)
    parent_spec = register_test_job(
        lambda context: {"touched_user_ids": [7]},
        follow_ups=(FollowUp(broken.name, touched_users),),
    )
    parent = run_now(parent_spec.name)
    follow_up = parent.follow_ups.get()

    # when the follow-up runs and fails
    with pytest.raises(BodyFailed):
        job_run_execute(run_id=follow_up.pk)

    # then the follow-up failed, and its parent is still succeeded
    follow_up.refresh_from_db()
    parent.refresh_from_db()
    assert follow_up.status == RunStatus.FAILED
    assert parent.status == RunStatus.SUCCEEDED


def test_params_raising_leaves_the_parent_succeeded_and_is_logged(
    register_test_job, follow_up_job, caplog
):
    # given a follow-up whose parameters cannot be derived
    def params(run):
        raise KeyError("touched_user_ids")

    spec = register_test_job(
        lambda context: {"changed": 1}, follow_ups=(FollowUp(follow_up_job.name, params),)
    )

    # when a run succeeds
    with caplog.at_level(logging.INFO, logger="steward.jobs"):
        parent = run_now(spec.name)

    # then it stays succeeded, no follow-up is recorded, and the error names both jobs
    assert parent.status == RunStatus.SUCCEEDED
    assert not JobRun.objects.filter(job=follow_up_job.name).exists()
    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert [record.getMessage() for record in errors] == [
        f"Could not request the follow-up {follow_up_job.name} of {spec.name} run "
        f"#{parent.pk}; the run stays succeeded."
    ]
    assert "KeyError" in caplog.text


def test_parameters_the_follow_up_refuses_leave_the_parent_succeeded(
    register_test_job, follow_up_job, caplog
):
    spec = register_test_job(
        lambda context: {"changed": 1},
        follow_ups=(FollowUp(follow_up_job.name, lambda run: {"user_ids": ["not an id"]}),),
    )

    with caplog.at_level(logging.ERROR, logger="steward.jobs"):
        parent = run_now(spec.name)

    assert parent.status == RunStatus.SUCCEEDED
    assert not JobRun.objects.filter(job=follow_up_job.name).exists()
    assert f"Could not request the follow-up {follow_up_job.name}" in caplog.text


def test_the_end_of_a_run_seen_twice_requests_one_follow_up(parent_job, follow_up_job, caplog):
    # given a run that succeeded and requested its follow-up
    parent = run_now(parent_job.name)
    assert parent.follow_ups.count() == 1

    # when its end is processed again (its message delivered again, the requester called again)
    job_run_execute(run_id=parent.pk)
    with caplog.at_level(logging.INFO, logger="steward.jobs"):
        again = follow_ups_request(run=parent)

    # then nothing more is requested, and that is no error
    assert again == []
    assert JobRun.objects.filter(job=follow_up_job.name).count() == 1
    assert (
        f"The follow-up {follow_up_job.name} of {parent_job.name} run #{parent.pk} was "
        "requested already." in caplog.text
    )
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_a_duplicate_request_racing_the_first_is_refused_by_the_constraint(
    parent_job, follow_up_job
):
    # given a run whose follow-up was requested while this process was not looking
    parent = run_now(parent_job.name)
    JobRun.objects.filter(follow_up_of=parent).delete()
    first = job_run_request(
        job=follow_up_job.name,
        trigger=Trigger.FOLLOW_UP,
        params={"user_ids": [4]},
        follow_up_of=parent,
        enqueue=False,
    )

    # when a second request races past the check, the constraint keeps one
    with pytest.raises(IntegrityError), transaction.atomic():
        job_run_request(
            job=follow_up_job.name,
            trigger=Trigger.FOLLOW_UP,
            params={"user_ids": [4]},
            follow_up_of=parent,
            enqueue=False,
        )
    assert list(parent.follow_ups.all()) == [first]


def test_a_fanned_out_run_requests_its_follow_up_once_when_its_last_shard_ends(
    register_test_job, follow_up_job
):
    # given a job that hands its work to two shards, each touching one user
    def body(context):
        if context.run.shard is None:
            return FanOut(shards=[{"index": 0}, {"index": 1}], summary={"due": 2})
        return {"touched_user_ids": [10 + context.run.shard["index"]], "changed": 1}

    spec = register_test_job(body, follow_ups=(FollowUp(follow_up_job.name, touched_users),))
    parent = run_now(spec.name)
    assert parent.status == RunStatus.WAITING
    first, last = parent.shards.order_by("pk")

    # when the first shard ends, nothing is requested yet
    job_run_execute(run_id=first.pk)
    assert not JobRun.objects.filter(job=follow_up_job.name).exists()

    # when the last one ends, the parent succeeds and requests its follow-up once
    job_run_execute(run_id=last.pk)
    fan_out_finish(parent.pk)
    parent.refresh_from_db()
    assert parent.status == RunStatus.SUCCEEDED
    follow_up = JobRun.objects.get(job=follow_up_job.name)
    assert follow_up.follow_up_of == parent
    assert follow_up.params == {"user_ids": [10, 11]}
    assert (
        f"Requested follow-up run #{follow_up.pk} of {follow_up_job.name} (user_ids=[10, 11])."
        in log_lines(parent)
    )


# --- Validation at start-up -----------------------------------------------------------------------


@pytest.fixture
def looping_pair(register_test_job):
    """Two jobs each following the other up: first -> second -> first."""
    first = register_test_job(lambda context: {})
    second = register_test_job(
        lambda context: {}, follow_ups=(FollowUp(first.name, lambda run: {}),)
    )
    # `first` can name `second` only once it exists: registered again with its follow-up (the
    # fixture removes it by name afterwards).
    registry._REGISTRY.pop(first.name)
    first = registry.register(
        dataclasses.replace(first, follow_ups=(FollowUp(second.name, lambda run: {}),))
    )
    return first, second


def test_a_loop_of_follow_ups_is_refused_at_start_up_naming_the_loop(looping_pair):
    first, second = looping_pair
    # Named from the job registered first: `second`, since `first` was registered again.
    loop = f"{second.name} -> {first.name} -> {second.name}"

    assert follow_up_errors() == [f"follow-ups loop: {loop}"]
    with pytest.raises(ImproperlyConfigured, match=loop):
        follow_ups_validate()
    # a worker imports the tasks module once every app has registered its jobs: it stops there
    with pytest.raises(ImproperlyConfigured, match=loop):
        importlib.reload(tasks)


def test_a_loop_of_follow_ups_is_a_system_check_error(looping_pair):
    first, second = looping_pair

    found = [error for error in checks.run_checks() if error.id == "steward.E003"]

    assert [error.msg for error in found] == [
        f"follow-ups loop: {second.name} -> {first.name} -> {second.name}"
    ]


def test_a_follow_up_naming_no_registered_job_is_refused(register_test_job):
    spec = register_test_job(
        lambda context: {}, follow_ups=(FollowUp("no_such_job", lambda run: {}),)
    )

    errors = follow_up_errors()

    assert errors == [f"job {spec.name}: follow-up 'no_such_job' is not a registered job"]
    assert [e.msg for e in checks.run_checks() if e.id == "steward.E003"] == errors


def test_the_registered_jobs_follow_ups_are_valid():
    assert follow_up_errors() == []
    follow_ups_validate()


def test_a_chain_without_a_loop_is_accepted(register_test_job, follow_up_job):
    middle = register_test_job(
        lambda context: {}, follow_ups=(FollowUp(follow_up_job.name, touched_users),)
    )
    register_test_job(lambda context: {}, follow_ups=(FollowUp(middle.name, touched_users),))

    assert follow_up_errors() == []


# --- Surfaces ---------------------------------------------------------------------------------


@pytest.fixture
def linked_runs(parent_job, follow_up_job):
    parent = run_now(parent_job.name)
    return parent, parent.follow_ups.get()


def test_the_api_links_a_run_and_its_follow_ups(linked_runs):
    parent, follow_up = linked_runs
    api = token_client(user_with())

    detail = api.get(f"/api/v1/runs/{parent.pk}/").json()["data"]
    assert detail["follow_up_of"] is None
    assert detail["follow_ups"] == [{"id": follow_up.pk, "job": follow_up.job, "status": "queued"}]
    child = api.get(f"/api/v1/runs/{follow_up.pk}/").json()["data"]
    assert child["follow_up_of"] == {"id": parent.pk, "job": parent.job}
    assert child["trigger"] == "follow_up"
    assert child["follow_ups"] == []

    listed = api.get("/api/v1/runs/", {"follow_up_of": parent.pk}).json()["data"]
    assert [run["id"] for run in listed["executions"]] == [follow_up.pk]
    assert listed["executions"][0]["follow_up_of"] == {"id": parent.pk, "job": parent.job}
    by_trigger = api.get("/api/v1/runs/", {"trigger": "follow_up"}).json()["data"]
    assert [run["id"] for run in by_trigger["executions"]] == [follow_up.pk]
    assert api.get("/api/v1/runs/", {"follow_up_of": "x"}).status_code == 400


def test_the_admin_run_page_links_the_parent_and_the_follow_ups(linked_runs):
    parent, follow_up = linked_runs
    client = Client()
    client.force_login(user_with(staff=True, superuser=True))

    parent_page = client.get(reverse("admin:jobs_jobrun_change", args=[parent.pk])).content
    child_page = client.get(reverse("admin:jobs_jobrun_change", args=[follow_up.pk])).content

    child_url = reverse("admin:jobs_jobrun_change", args=[follow_up.pk])
    parent_url = reverse("admin:jobs_jobrun_change", args=[parent.pk])
    assert f'<a href="{child_url}">{follow_up.job} run #{follow_up.pk}</a>' in parent_page.decode()
    assert f'<a href="{parent_url}">{parent.job} run #{parent.pk}</a>' in child_page.decode()


def test_the_dashboard_run_page_links_the_parent_and_the_follow_ups(linked_runs):
    parent, follow_up = linked_runs
    client = Client()
    client.force_login(user_with())

    parent_page = client.get(reverse("dashboard-run", args=[parent.pk])).content.decode()
    child_page = client.get(reverse("dashboard-run", args=[follow_up.pk])).content.decode()

    child_url = reverse("dashboard-run", args=[follow_up.pk])
    parent_url = reverse("dashboard-run", args=[parent.pk])
    assert f'<a href="{child_url}">{follow_up.job} #{follow_up.pk}</a>' in parent_page
    assert f'<a href="{parent_url}">{parent.job} #{parent.pk}</a>' in child_page


def test_runjob_prints_the_follow_ups_a_run_requested(parent_job, follow_up_job, capsys):
    call_command("runjob", parent_job.name)
    text = capsys.readouterr().out

    follow_up = JobRun.objects.get(job=follow_up_job.name)
    assert f"   Follow-up requested: {follow_up_job.name} run #{follow_up.pk} (queued)" in text

    call_command("runjob", parent_job.name, "--json")
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    second = JobRun.objects.filter(job=follow_up_job.name).order_by("-pk").first()
    assert shown["follow_ups"] == [{"id": second.pk, "job": follow_up_job.name, "status": "queued"}]
