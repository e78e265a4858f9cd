"""What a job body receives: the run's time, mode, logger and progress reporting."""

from __future__ import annotations

import dataclasses
import logging
import time
from datetime import datetime

from django.utils import timezone

from jobs.cancellation import cancel_requested
from jobs.conf import conf
from jobs.exceptions import RunCancelled, RunInterrupted
from jobs.fanout import FanOut
from jobs.middleware import shutdown_requested
from jobs.models import JobRun, cancel_text
from jobs.runlog import RunLog, run_log_save
from jobs.sweeps import PkRange, pk_ranges

logger = logging.getLogger("steward.jobs")

PROGRESS_INTERVAL_SECONDS = 5.0


class JobLogger(logging.LoggerAdapter):
    """A run's own lines: prefixed with the run in text, its id, job and attempt as fields,
    and preceded by the run's start banner."""

    def __init__(self, logger: logging.Logger, run_log: RunLog) -> None:
        super().__init__(logger, run_log.fields)
        self.run_log = run_log

    def log(self, level, msg, *args, **kwargs) -> None:
        if level >= logging.INFO and self.isEnabledFor(level):
            self.run_log.announce()
        super().log(level, msg, *args, **kwargs)

    def process(self, msg, kwargs):
        kwargs["extra"] = {**self.extra, **kwargs.get("extra", {})}
        return f"[{self.extra['job']} #{self.extra['run_id']}] {msg}", kwargs


@dataclasses.dataclass
class JobContext:
    run: JobRun
    as_of: datetime
    dry_run: bool
    # The run's validated parameters: e.g. `escrow_ids` for a targeted release.
    params: dict = dataclasses.field(default_factory=dict)
    run_log: RunLog | None = None
    batch_size: int = dataclasses.field(default_factory=lambda: conf.BATCH_SIZE)
    partial_reasons: list[str] = dataclasses.field(default_factory=list)
    _last_progress: float = dataclasses.field(default_factory=time.monotonic)
    _last_saved: float = dataclasses.field(default_factory=time.monotonic)
    _started: float = dataclasses.field(default_factory=time.monotonic)
    _batches: int = 0

    @property
    def log(self) -> JobLogger:
        return JobLogger(logger, self.run_log or RunLog(self.run, self.run.attempt_count))

    def progress(self, *, done: int, total: int | None, what: str) -> None:
        """Log progress on long work, at most every few seconds and always at the end.

        Called between batches, it is also where a shutting-down worker stops the run (the
        batch before it has committed, and the run handed back sweeps up the rest) and where a
        run an operator cancelled stops, keeping the batches it committed.
        """
        if shutdown_requested.is_set():
            raise RunInterrupted(f"worker shutting down after {done:,} {what}; will resume")
        if (cancel := cancel_requested(self.run.pk)) is not None:
            by, reason = cancel
            raise RunCancelled(
                f"{cancel_text(by, reason)}; stopped after {done:,} {what}", done=done, what=what
            )
        now = time.monotonic()
        self._batches += 1
        finished = total is not None and done >= total
        if finished or now - self._last_saved >= conf.PROGRESS_SAVE_SECONDS:
            self._last_saved = now
            self._save_progress(done=done, total=total, what=what, elapsed=now - self._started)
        if not finished and now - self._last_progress < PROGRESS_INTERVAL_SECONDS:
            return
        self._last_progress = now
        if total:
            self.log.info(
                "Progress: %s/%s %s (%d%%)", f"{done:,}", f"{total:,}", what, done * 100 // total
            )
        else:
            self.log.info("Progress: %s %s", f"{done:,}", what)

    def _save_progress(self, *, done: int, total: int | None, what: str, elapsed: float) -> None:
        """What the dashboard and the API show of a running run, with the lines it logged."""
        per_second = done / elapsed if elapsed > 0 else None
        left = None
        if total is not None and per_second:
            left = round(max(total - done, 0) / per_second, 1)
        self.run.progress = {
            "done": done,
            "total": total,
            "what": what,
            "batches": self._batches,
            "per_second": round(per_second, 1) if per_second is not None else None,
            "seconds_left": left,
            "at": timezone.now().isoformat(),
        }
        JobRun.objects.filter(pk=self.run.pk).update(progress=self.run.progress)
        if self.run_log is not None:
            run_log_save(self.run.pk, self.run_log.fields["attempt"])

    @property
    def pk_range(self) -> PkRange | None:
        """A shard run's slice of the table, or None for a run over everything due."""
        if not self.run.shard:
            return None
        return self.run.shard["pk_from"], self.run.shard["pk_to"]

    def should_fan_out(self, backlog: int) -> bool:
        """Whether a backlog this large goes to shard runs (never for a shard or a dry run)."""
        threshold = conf.FANOUT_THRESHOLD
        return (
            self.run.parent_id is None
            and not self.dry_run
            and threshold > 0
            and backlog > threshold
        )

    def fan_out(self, due_rows, *, summary: dict) -> FanOut:
        """Hand the rows of `due_rows` to shard runs of STEWARD_SHARD_SIZE rows each."""
        ranges = pk_ranges(due_rows, size=conf.SHARD_SIZE)
        self.log.info(
            "Fanning out into %s shards of up to %s rows",
            len(ranges),
            f"{conf.SHARD_SIZE:,}",
        )
        return FanOut(
            shards=[
                {"index": index, "pk_from": start, "pk_to": end}
                for index, (start, end) in enumerate(ranges)
            ],
            summary=summary,
        )

    def mark_partial(self, reason: str) -> None:
        """Some of the work failed while the rest went through: the run ends `partial`."""
        self.partial_reasons.append(reason)
        self.log.error("Partial failure: %s", reason)
