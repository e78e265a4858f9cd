"""Alerts for failed runs. The backend is pluggable through `STEWARD_ALERT_BACKEND`."""

import logging
from typing import Protocol

from django.core.mail import mail_admins
from django.utils.module_loading import import_string

from jobs.conf import conf
from jobs.exceptions import UnknownJob
from jobs.models import JobRun, RunStatus
from jobs.registry import get_job

logger = logging.getLogger("steward.alerts")


class AlertBackend(Protocol):
    def send(self, *, subject: str, message: str, run: JobRun | None) -> None: ...


class MailAdminsAlertBackend:
    """Sends alerts to `ADMINS` through Django's email backend."""

    def send(self, *, subject: str, message: str, run: JobRun | None) -> None:
        mail_admins(subject, message, fail_silently=True)


class LogOnlyAlertBackend:
    """Keeps alerts in the log only (the ERROR line every alert writes)."""

    def send(self, *, subject: str, message: str, run: JobRun | None) -> None:
        return None


def alert_backend() -> AlertBackend:
    return import_string(conf.ALERT_BACKEND)()


def alert_send(*, subject: str, message: str, run: JobRun | None = None) -> None:
    """Write the ERROR line and hand the alert to the configured backend."""
    logger.error("ALERT %s | %s", subject, message.splitlines()[0] if message else "")
    try:
        alert_backend().send(subject=subject, message=message, run=run)
    except Exception:
        # An unreachable mail server must not turn a recorded failure into a lost one.
        logger.exception("Alert backend failed for %r", subject)


def _alerts_own_partial_runs(job: str) -> bool:
    try:
        return not get_job(job).alert_partial
    except UnknownJob:
        return False


def alert_run_failed(run: JobRun) -> None:
    """Alert on a run that ended failed, partial or lost; a partial run of a job that sends
    its own alerts (once per failing state, say) is left to the job."""
    if run.status == RunStatus.PARTIAL and _alerts_own_partial_runs(run.job):
        return
    status = run.get_status_display().lower()
    subject = f"[Steward] job {run.job} run #{run.pk} {status}"
    # The first line is the one the ERROR log line carries: why, in a sentence.
    lines = [
        run.status_reason or run.error or status,
        "",
        f"Job: {run.job}",
        f"Run: #{run.pk} ({run.trigger}, as of {run.as_of.isoformat()})",
        f"Status: {run.status}",
        f"Attempts: {run.attempt_count}",
        f"Error: {run.error or run.status_reason}",
        "",
        run.traceback,
    ]
    alert_send(subject=subject, message="\n".join(lines), run=run)
