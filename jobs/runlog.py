"""The lines a run logs: a banner when an attempt starts, its summary and a banner when it ends.

The start banner waits until the run has something to say (a line of its own, or a summary
with work done), so a run with nothing to do logs one line. Every line carries the run's id,
job and attempt as fields, for the JSON log format.
"""

from __future__ import annotations

import collections
import logging
import threading
from datetime import UTC, datetime

from django.db import transaction

from jobs.conf import conf
from jobs.models import JobRun, JobRunAttempt
from jobs.panels import run_summary_figures
from jobs.params import params_text
from jobs.registry import get_job
from jobs.run_writes import attempt_log_save

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


class RunLogCapture(logging.Handler):
    """Keeps the lines each attempt logs (those carrying its run id and attempt number), the
    last STEWARD_RUN_LOG_LINES of them, until the runner saves them with the attempt."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.setFormatter(logging.Formatter("%(message)s"))
        self._lines: dict[tuple[int, int], collections.deque] = {}
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        key = (getattr(record, "run_id", None), getattr(record, "attempt", None))
        if None in key:
            return
        line = {
            "at": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "line": self.format(record),
        }
        with self._guard:
            lines = self._lines.get(key)
            if lines is None:
                lines = self._lines[key] = collections.deque(maxlen=conf.RUN_LOG_LINES)
            lines.append(line)

    def lines(self, run_id: int, attempt: int, *, forget: bool = False) -> list[dict] | None:
        with self._guard:
            key = (run_id, attempt)
            lines = self._lines.pop(key, None) if forget else self._lines.get(key)
            return None if lines is None else list(lines)


run_log_capture = RunLogCapture()


def run_log_capture_install() -> None:
    """From the jobs app's ready(): after Django's LOGGING, which would drop a handler added
    before it."""
    runner_log = logging.getLogger("steward.jobs")
    if run_log_capture not in runner_log.handlers:
        runner_log.addHandler(run_log_capture)


def run_log_lines(run_id: int, attempt: int) -> list[dict] | None:
    """The attempt's lines so far, for the statement that saves its outcome to keep."""
    return run_log_capture.lines(run_id, attempt)


def run_log_save(
    run_id: int, attempt: int, *, final: bool = False, saved: list[dict] | None = None
) -> None:
    """Save the attempt's lines so far with it; `final` once it has ended, with `saved` the
    lines already kept with it (written again only if a line came since). A save while it
    runs is best effort: it skips an attempt row another transaction holds (the final save
    writes every line), so a run never waits on its own log."""
    lines = run_log_capture.lines(run_id, attempt, forget=final)
    if lines is None:
        return
    if final:
        # The capture hands out the same line objects: an unchanged last line means no new one.
        if not saved or lines[-1] is not saved[-1]:
            attempt_log_save(run_id, attempt, lines)
        return
    attempts = JobRunAttempt.objects.filter(run_id=run_id, number=attempt)
    with transaction.atomic():
        if attempts.select_for_update(skip_locked=True).values_list("pk", flat=True).first():
            attempts.update(log=lines)


def run_log_append(run_id: int, attempt: int) -> None:
    """Add what a run logged after its attempt ended (a fanned-out run's closing summary) to
    that attempt's lines."""
    lines = run_log_capture.lines(run_id, attempt, forget=True)
    ended = JobRunAttempt.objects.filter(run_id=run_id, number=attempt).first()
    if lines and ended is not None:
        ended.log = (ended.log + lines)[-conf.RUN_LOG_LINES :]
        ended.save(update_fields=["log"])
