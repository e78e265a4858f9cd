"""Start periodiq with Django set up: its one actor, `tick_schedules`, reads the Schedule rows
every minute, so schedules change without a restart."""

import signal

import periodiq
from django.core.management.base import BaseCommand, CommandError

from jobs.checks import cron_errors
from jobs.follow_ups import follow_up_errors
from jobs.heartbeats import Heartbeat
from jobs.management.commands._listing import next_run_cells, state_cell, table
from jobs.models import WorkerHeartbeat
from jobs.schedule_selectors import ScheduleOverview, schedule_overviews

# A fleet's thousands of per-entity schedules are not printed at every start.
LISTED_AT_START = 100
HEADERS = ("schedule", "job", "cron", "time zone", "state", "next run (its zone)", "next run (UTC)")


class Command(BaseCommand):
    help = (
        "Run the scheduler: one periodiq process whose minute tick records the runs of the "
        "schedules due and sends them to the workers. Run exactly one in production; a second "
        "is harmless but wasteful."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="Check the jobs' default crons, list every schedule with its next run and exit.",
        )

    def handle(self, *args, **options) -> None:
        errors = cron_errors()
        if errors:
            raise CommandError("invalid default crons:\n  " + "\n  ".join(errors))
        if errors := follow_up_errors():
            raise CommandError("invalid job follow-ups:\n  " + "\n  ".join(errors))
        overviews = schedule_overviews()
        listed = overviews if options["check"] else overviews[:LISTED_AT_START]
        if listed:
            self.stdout.write(table(HEADERS, [_row(overview) for overview in listed]))
        else:
            self.stdout.write("No schedules yet: each minute's tick will find nothing to run.")
        if len(listed) < len(overviews):
            self.stdout.write(
                f"... and {len(overviews) - len(listed):,} more: `manage.py schedules list` "
                "shows them all."
            )
        if options["check"]:
            return
        # SIGINT and SIGTERM both stop it cleanly, also when it was started with SIGINT
        # ignored (a shell's background job inherits that): between ticks nothing is in flight.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
        parser = periodiq.make_argument_parser()
        # Its heartbeat is what /readyz reads to say a scheduler is up.
        heartbeat = Heartbeat(queues=[], threads=0, role=WorkerHeartbeat.Role.SCHEDULER)
        heartbeat.start()
        try:
            status = periodiq.main(parser.parse_args(["django_dramatiq.setup", "jobs.tasks"]))
        except KeyboardInterrupt:
            self.stdout.write("Scheduler stopped.")
            status = 0
        finally:
            heartbeat.stop()
        if status:
            raise CommandError(f"periodiq exited with status {status}")


def _row(overview: ScheduleOverview) -> list[str]:
    schedule = overview.schedule
    return [
        schedule.name,
        schedule.job,
        schedule.cron,
        schedule.timezone,
        state_cell(overview),
        *next_run_cells(overview),
    ]


def _interrupt(signum, frame):
    raise KeyboardInterrupt
