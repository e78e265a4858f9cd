"""Users and runs for the operator-surface tests (API, admin, dashboard)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs.models import AttemptStatus, JobRun, JobRunAttempt, RunStatus, Trigger
from tests.factories import UserFactory

TRIGGER = "jobs.trigger_jobrun"
RETRY = "jobs.retry_jobrun"
PAUSE = "jobs.pause_jobstate"
REQUEUE = "jobs.requeue_dead"
VIEW_SCHEDULE = "jobs.view_schedule"
ADD_SCHEDULE = "jobs.add_schedule"
CHANGE_SCHEDULE = "jobs.change_schedule"
DELETE_SCHEDULE = "jobs.delete_schedule"
PAUSE_SCHEDULE = "jobs.pause_schedule"
SCHEDULE_PERMISSIONS = (
    VIEW_SCHEDULE,
    ADD_SCHEDULE,
    CHANGE_SCHEDULE,
    DELETE_SCHEDULE,
    PAUSE_SCHEDULE,
)


def user_with(*perms: str, staff: bool = True, superuser: bool = False):
    """A user with exactly these model permissions ("app.codename")."""
    user = UserFactory(is_staff=staff, is_superuser=superuser)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def token_header(user) -> str:
    return f"Token {Token.objects.create(user=user).key}"


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=token_header(user))
    return client


def finished_run(
    job: str = "expire_matches",
    *,
    status: str = RunStatus.SUCCEEDED,
    duration_ms: int | None = 100,
    trigger: str = Trigger.SCHEDULE,
    error: str = "",
    traceback: str = "",
    summary: dict | None = None,
    dry_run: bool = False,
    ago: timedelta = timedelta(minutes=5),
) -> JobRun:
    """A run recorded as if the runner had finished it, with one attempt."""
    finished = timezone.now() - ago
    started = finished - timedelta(milliseconds=duration_ms or 0)
    run = JobRun.objects.create(
        job=job,
        trigger=trigger,
        requested_by="scheduler",
        as_of=started,
        dry_run=dry_run,
        status=status,
        started_at=None if status == RunStatus.SKIPPED else started,
        finished_at=finished,
        duration_ms=None if status == RunStatus.SKIPPED else duration_ms,
        attempt_count=0 if status == RunStatus.SKIPPED else 1,
        summary=summary or {},
        error=error,
        traceback=traceback,
    )
    if status != RunStatus.SKIPPED:
        JobRunAttempt.objects.create(
            run=run,
            number=1,
            status=AttemptStatus.FAILED if status == RunStatus.FAILED else AttemptStatus.SUCCEEDED,
            started_at=started,
            finished_at=finished,
            worker="test:1",
            error=error,
            traceback=traceback,
        )
    return run
