"""Plain-text listings shared by the commands that show schedules (`schedules list`,
`runscheduler`). The leading underscore keeps Django from taking it for a command."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from jobs.selectors import ScheduleOverview


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, under a header and a rule."""
    rows = [list(row) for row in rows]
    widths = [
        max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip()

    return "\n".join(
        [line(headers), line(["-" * width for width in widths])] + [line(row) for row in rows]
    )


def cron_cell(overview: ScheduleOverview) -> str:
    """The spec, and in words when the words say something the spec does not."""
    cron = overview.schedule.cron
    return cron if overview.in_words == cron else f"{cron} ({overview.in_words})"


def next_run_cells(overview: ScheduleOverview) -> tuple[str, str]:
    """The next run in the schedule's own time zone and in UTC ("never" for a spec that does
    not fire again)."""
    if not overview.next_runs:
        return "never", "never"
    upcoming = overview.next_runs[0]
    return (
        upcoming.local.strftime("%Y-%m-%d %H:%M %Z"),
        upcoming.utc.strftime("%Y-%m-%d %H:%M UTC"),
    )


def state_cell(overview: ScheduleOverview) -> str:
    """Why its slots are recorded skipped ("schedule paused", "job ... paused"), or "enabled"."""
    return overview.paused_reason or "enabled"
