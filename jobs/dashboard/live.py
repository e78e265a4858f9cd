"""What the dashboard shows of work under way: a run's progress as a bar, each attempt's own
log lines, and the worker and scheduler processes with the runs they execute.

The figures come from the engine (`run_progress`, `JobRunAttempt.log`, the heartbeats); this
module only words them for a person.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime

from jobs.conf import conf
from jobs.models import JobRun, JobRunAttempt, RunStatus, WorkerHeartbeat
from jobs.panels import duration_words
from jobs.run_selectors import WorkerRun, workers_with_runs
from jobs.selectors import run_progress

# A run in these states moves: its page refreshes every LIVE_REFRESH_SECONDS.
LIVE_STATUSES = (RunStatus.RUNNING, RunStatus.WAITING)
LIVE_REFRESH_SECONDS = 3
# Log levels shown highlighted, as the CSS class of their line.
LEVEL_CLASSES = {"WARNING": "log-warning", "ERROR": "log-error", "CRITICAL": "log-error"}


def seconds_words(seconds: float) -> str:
    """E.g. "4 s", "2 min 5 s", "3 h 5 min" (`duration_words` from an hour on)."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3_600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    return duration_words(seconds)


def _parsed(at: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(at) if at else None
    except (TypeError, ValueError):
        return None


@dataclasses.dataclass(frozen=True)
class ProgressBar:
    done: int
    total: int | None
    what: str
    percent: int | None  # of the total; None when the run does not know its total
    batches: int | None
    per_second: float | None
    seconds_left: str  # in words; "" when unknown
    shards_done: int | None  # a fan-out parent's shards, finished and all
    shards_total: int | None
    at: datetime | None  # when the run last saved it


def progress_bar(progress: dict | None) -> ProgressBar | None:
    """A run's progress (as `run_progress` reads it) ready to draw; None before the run said
    anything about it."""
    if not progress or progress.get("done") is None:
        return None
    done, total = int(progress["done"]), progress.get("total")
    percent = None
    if total:
        percent = min(100, done * 100 // total)
    elif total == 0:
        percent = 100
    left = progress.get("seconds_left")
    return ProgressBar(
        done=done,
        total=total,
        what=progress.get("what") or "",
        percent=percent,
        batches=progress.get("batches"),
        per_second=progress.get("per_second"),
        seconds_left=seconds_words(left) if left is not None else "",
        shards_done=progress.get("shards_done"),
        shards_total=progress.get("shards_total"),
        at=_parsed(progress.get("at")),
    )


def run_progress_bar(run: JobRun) -> ProgressBar | None:
    """The bar of a run under way (a fan-out parent's is its shards'); none once finished."""
    if run.status not in LIVE_STATUSES:
        return None
    return progress_bar(run_progress(run))


def live_progress_bars(runs: Iterable[JobRun | None]) -> dict[int, ProgressBar]:
    """The progress bars of the runs under way among `runs`, by run id (a fan-out parent's
    read from its shards: one query each, and a job has one such run at a time)."""
    live = {run.pk: run for run in runs if run is not None and run.status in LIVE_STATUSES}
    return {pk: bar for pk, run in live.items() if (bar := run_progress_bar(run))}


def refresh_seconds_of(run: JobRun) -> int:
    """A moving run's page refreshes every few seconds, a queued one as the dashboard does, a
    finished one never."""
    if run.is_finished:
        return 0
    if run.status in LIVE_STATUSES:
        return min(LIVE_REFRESH_SECONDS, conf.DASHBOARD_REFRESH_SECONDS)
    return conf.DASHBOARD_REFRESH_SECONDS


@dataclasses.dataclass(frozen=True)
class LogLine:
    at: datetime | None
    level: str
    line: str
    css: str  # "" for a plain line


@dataclasses.dataclass(frozen=True)
class AttemptLog:
    attempt: JobRunAttempt
    lines: list[LogLine]
    # The attempt logged more than it kept: only its last STEWARD_RUN_LOG_LINES are shown.
    cut: bool


def attempt_logs(attempts: Iterable[JobRunAttempt]) -> list[AttemptLog]:
    """Each attempt's own lines, the newest attempt first."""
    kept = conf.RUN_LOG_LINES
    logs = []
    for attempt in sorted(attempts, key=lambda attempt: attempt.number, reverse=True):
        lines = [
            LogLine(
                at=_parsed(entry.get("at")),
                level=entry.get("level", ""),
                line=entry.get("line", ""),
                css=LEVEL_CLASSES.get(entry.get("level", ""), ""),
            )
            for entry in attempt.log or []
            if isinstance(entry, dict)
        ]
        logs.append(AttemptLog(attempt=attempt, lines=lines, cut=len(lines) >= kept))
    return logs


@dataclasses.dataclass(frozen=True)
class WorkerRow:
    heartbeat: WorkerHeartbeat
    gone: bool  # its heartbeat stopped: killed, or its host lost
    seen_ago: str
    # The runs it executes; a gone worker's, those it was executing when it stopped beating.
    runs: list[WorkerRun]


def worker_rows(*, now: datetime) -> list[WorkerRow]:
    """Every worker and scheduler process, alive or gone, with the runs it executes."""
    return [
        WorkerRow(
            heartbeat=heartbeat,
            gone=heartbeat.gone,
            seen_ago=f"{seconds_words((now - heartbeat.last_seen_at).total_seconds())} ago",
            runs=heartbeat.runs,
        )
        for heartbeat in workers_with_runs(now=now)
    ]
