"""The lines a run logs: a banner when an attempt starts, its summary and a banner when it ends.

The start banner waits until the run has something to say (a line of its own, or a summary
with work done), so a run with nothing to do logs one line. Every line carries the run's id,
job and attempt as fields, for the JSON log format.
"""

from __future__ import annotations

import logging

from jobs.models import JobRun
from jobs.panels import run_summary_figures
from jobs.params import params_text
from jobs.registry import get_job

logger = logging.getLogger("steward.jobs")

BANNER = "=" * 60


def run_fields(run: JobRun, attempt: int | None = None) -> dict:
    return {"run_id": run.pk, "job": run.job, "attempt": attempt or run.attempt_count}


def did_nothing(value) -> bool:
    """Whether a summary (or a part of it) counts no work: every number zero, every list
    empty; flags and words do not count."""
    if isinstance(value, bool | str) or value is None:
        return True
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, list | tuple):
        return all(did_nothing(item) for item in value)
    if isinstance(value, dict):
        return all(did_nothing(item) for item in value.values())
    return False


class RunLog:
    """What one attempt of a run logs."""

    def __init__(self, run: JobRun, attempt: int) -> None:
        self.run = run
        self.fields = run_fields(run, attempt)
        self.announced = False

    def announce(self) -> None:
        """Log the start banner, once, before the run's first line of its own."""
        if self.announced:
            return
        self.announced = True
        run = self.run
        mode = " (dry run)" if run.dry_run else ""
        by = f" by {run.requested_by}" if run.requested_by else ""
        self._info(BANNER)
        self._info(f"Running job: {run.job}{mode}, run #{run.pk}, attempt {self.fields['attempt']}")
        why = f", reason: {run.reason}" if run.reason else ""
        self._info(f"   Trigger: {run.trigger}{by}, as of {run.as_of.isoformat()}{why}")
        if run.params:
            self._info(f"   Parameters: {params_text(run.params)}")
        self._info(BANNER)

    def finish(self, run: JobRun) -> None:
        if not self.announced and _idle(run):
            mode = "dry run" if run.dry_run else "run"
            targets = f" ({params_text(run.params)})" if run.params else ""
            self._info(
                f"Job {run.status}: {run.job} {mode} #{run.pk}{targets} in {run.duration_ms} ms, "
                "nothing to do"
            )
            return
        self.announce()
        log_run_finish(run, fields=self.fields)

    def _info(self, line: str) -> None:
        logger.info("%s", line, extra=self.fields)


def _idle(run: JobRun) -> bool:
    """Whether the run did nothing: its job's work keys all false or zero, or, for a job that
    names none, nothing counted anywhere in its summary."""
    if work_keys := get_job(run.job).work_keys:
        return not any(run.summary.get(key) for key in work_keys)
    return did_nothing(run.summary)


def log_run_finish(run: JobRun, *, fields: dict | None = None) -> None:
    """The summary, one labelled figure a line, and the closing banner."""
    extra = fields or run_fields(run)
    summary_extra = {**extra, "summary_line": True}
    logger.info("%s summary:", run.job, extra=summary_extra)
    for figure in run_summary_figures(run):
        logger.info("   %s: %s", figure.label, figure.value, extra=summary_extra)
    logger.info(BANNER, extra=extra)
    logger.info(
        "Job %s: %s run #%s in %s ms, completed at %s",
        run.status,
        run.job,
        run.pk,
        run.duration_ms,
        run.finished_at.isoformat(),
        extra=extra,
    )
    logger.info(BANNER, extra=extra)
