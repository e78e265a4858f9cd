"""Start periodiq with Django set up and every job's schedule loaded."""

import signal

import periodiq
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from jobs.checks import cron_errors
from jobs.cron import next_slots
from jobs.registry import all_jobs


class Command(BaseCommand):
    help = (
        "Run the scheduler: one periodiq process that records each job's slot and sends it to "
        "the workers. Run exactly one in production; a second is harmless but wasteful."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="Validate the schedules, print the next run of each job and exit.",
        )

    def handle(self, *args, **options) -> None:
        errors = cron_errors()
        if errors:
            raise CommandError("invalid schedules:\n  " + "\n  ".join(errors))
        now = timezone.now()
        for spec in all_jobs():
            upcoming = next_slots(spec.cron, now, 1)
            when = upcoming[0].isoformat() if upcoming else "never"
            self.stdout.write(f"{spec.name:<22} {spec.cron:<14} next {when}")
        if options["check"]:
            return
        # SIGINT and SIGTERM both stop it cleanly, also when it was started with SIGINT
        # ignored (a shell's background job inherits that): between ticks nothing is in flight.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _interrupt)
        parser = periodiq.make_argument_parser()
        try:
            status = periodiq.main(parser.parse_args(["django_dramatiq.setup", "jobs.tasks"]))
        except KeyboardInterrupt:
            self.stdout.write("Scheduler stopped.")
            status = 0
        if status:
            raise CommandError(f"periodiq exited with status {status}")


def _interrupt(signum, frame):
    raise KeyboardInterrupt
