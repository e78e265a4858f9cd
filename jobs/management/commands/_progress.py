"""How `runjob` shows a run's progress while it runs: a rich bar on a terminal, with the
runner's log lines above it; else, waiting on the workers, a plain line every few seconds. The
leading underscore keeps Django from taking it for a command."""

import logging
import threading
import time

from django.db import connections
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from jobs.models import JobRun
from jobs.selectors import run_progress

# How often the bar reads the run's progress (which the run saves every
# STEWARD_PROGRESS_SAVE_SECONDS), and how often, off a terminal, a changed one is printed.
PROGRESS_POLL_SECONDS = 0.5
PROGRESS_LINE_SECONDS = 5.0


def progress_line(progress: dict) -> str:
    """E.g. "Progress: 1,000/5,000 escrows (20%)", as the runner logs it; a fanned-out run's
    also counts its shards."""
    done, total, what = progress.get("done") or 0, progress.get("total"), progress.get("what")
    counted = f"{done:,}/{total:,} {what} ({done * 100 // total}%)" if total else f"{done:,} {what}"
    if progress.get("shards_total"):
        counted += f", {progress['shards_done']} of {progress['shards_total']} shards finished"
    return f"Progress: {counted}"


class ProgressDisplay:
    """A run's progress as it goes: a rich bar when `console` is a terminal; otherwise, if
    `lines`, a plain progress line when it changed and a few seconds have passed."""

    def __init__(self, console: Console, *, title: str, lines: bool) -> None:
        self.console = console
        self.lines = lines
        self._last_line = ""
        self._line_at = float("-inf")
        self._bar: Progress | None = None
        if console.is_terminal:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[counted]}"),
                TextColumn("[dim]{task.fields[pace]}"),
                console=console,
            )
            self._task = self._bar.add_task(title, total=None, counted="waiting", pace="")

    def __enter__(self) -> "ProgressDisplay":
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def print_above(self, line: str) -> None:
        """A line printed above the bar (as is, no markup), or plainly off a terminal."""
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def show(self, progress: dict | None) -> None:
        if not progress or progress.get("done") is None:
            return
        if self._bar is not None:
            self._bar_update(progress)
        elif self.lines:
            self._line_print(progress)

    def _bar_update(self, progress: dict) -> None:
        done, total = progress["done"], progress.get("total")
        counted = f"{done:,}/{total:,}" if total is not None else f"{done:,}"
        counted += f" {progress.get('what') or ''}"
        if progress.get("shards_total"):
            counted += f", shards {progress['shards_done']}/{progress['shards_total']}"
        pace = []
        if progress.get("batches") is not None:
            pace.append(f"{progress['batches']:,} batches")
        if progress.get("per_second"):
            pace.append(f"{progress['per_second']:,.0f}/s")
        if progress.get("seconds_left"):
            pace.append(f"{progress['seconds_left']:,.0f} s left")
        self._bar.update(
            self._task, completed=done, total=total, counted=counted, pace=", ".join(pace)
        )

    def _line_print(self, progress: dict) -> None:
        line = progress_line(progress)
        now = time.monotonic()
        if line == self._last_line or now - self._line_at < PROGRESS_LINE_SECONDS:
            return
        self._last_line, self._line_at = line, now
        self.print_above(line)


class LinesAboveBar(logging.Filter):
    """While the bar is drawn, the runner's log lines go above it instead of through it."""

    def __init__(self, display: ProgressDisplay, formatter: logging.Formatter) -> None:
        super().__init__()
        self.display = display
        self.formatter = formatter

    def filter(self, record: logging.LogRecord) -> bool:
        self.display.print_above(self.formatter.format(record))
        return False


def log_formatter() -> logging.Formatter:
    """The console handler's formatter, so lines above the bar read as they would without."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.formatter is not None:
            return handler.formatter
    return logging.Formatter()


class ProgressPoller(threading.Thread):
    """Reads the run's saved progress every PROGRESS_POLL_SECONDS into the display while the
    runner executes the run in the main thread."""

    def __init__(self, run_id: int, display: ProgressDisplay) -> None:
        super().__init__(name=f"runjob-progress-{run_id}", daemon=True)
        self.run_id = run_id
        self.display = display
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(PROGRESS_POLL_SECONDS):
                run = JobRun.objects.filter(pk=self.run_id).first()
                if run is not None:
                    self.display.show(run_progress(run))
        finally:
            # This thread's own database connection, not the command's.
            connections.close_all()
