"""What the commands share: plain-text listings (`schedules list`, `runscheduler`, `queues
list`), who makes a change and why, and one-line parse errors. The leading underscore keeps
Django from taking it for a command."""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Sequence

from django.core.management.base import CommandError, CommandParser

from jobs.dashboard.forms import REASON_MAX_LENGTH
from jobs.schedule_selectors import ScheduleOverview

CLI = "cli"
MAX_BY_LENGTH = 100


def without_usage(parser: CommandParser) -> CommandParser:
    """A bad flag or value gets its one line ("queues pause: error: ..."), not the usage too."""
    parser.print_usage = lambda file=None: None
    return parser


def add_who_and_why(parser, *, kept_in: str = "the audit") -> None:
    parser.add_argument(
        "--by",
        metavar="NAME",
        help=f"Who makes the change, recorded as '{CLI}:<name>' (default: your OS user).",
    )
    parser.add_argument(
        "--reason",
        default="",
        help=f"Why, kept in {kept_in} (at most {REASON_MAX_LENGTH} characters).",
    )


def who_and_why(options) -> tuple[str, str]:
    """Who makes the change, named as the command line names itself, and why."""
    name = options["by"]
    if name is None:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            raise CommandError("cannot tell which user you are; name yourself with --by") from None
    name = name.strip()
    if not name or len(name) > MAX_BY_LENGTH:
        raise CommandError(f"--by must be a name of 1 to {MAX_BY_LENGTH} characters")
    reason = options["reason"]
    if len(reason) > REASON_MAX_LENGTH:
        raise CommandError(f"--reason must be at most {REASON_MAX_LENGTH} characters")
    return f"{CLI}:{name}", reason


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
