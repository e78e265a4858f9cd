"""The lines a run logs when an attempt starts and when the run ends."""

from __future__ import annotations

import logging

from jobs.models import JobRun

logger = logging.getLogger("steward.jobs")

BANNER = "=" * 60


def log_run_start(run: JobRun, attempt_number: int) -> None:
    mode = " (dry run)" if run.dry_run else ""
    logger.info(BANNER)
    logger.info("Running job: %s%s, run #%s, attempt %s", run.job, mode, run.pk, attempt_number)
    logger.info(
        "   Trigger: %s%s", run.trigger, f" by {run.requested_by}" if run.requested_by else ""
    )
    logger.info("   As of: %s", run.as_of.isoformat())
    logger.info(BANNER)


def log_run_finish(run: JobRun) -> None:
    logger.info("%s Summary:", run.job)
    for key, value in run.summary.items():
        logger.info("   %s: %s", key.replace("_", " ").capitalize(), value)
    logger.info(BANNER)
    logger.info("Job %s: %s run #%s", run.status, run.job, run.pk)
    logger.info("   Duration: %sms", run.duration_ms)
    logger.info("   Completed at: %s", run.finished_at.isoformat())
    logger.info(BANNER)
