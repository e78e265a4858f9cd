"""`manage.py drain`: stop the fleet taking messages before a deploy, and wait for the runs in
progress to finish."""

import time

from django.core.management.base import BaseCommand, CommandError

from jobs.controls import fleet_drain_end, fleet_drain_start
from jobs.exceptions import StewardError
from jobs.fleet import fleet_draining, runs_executing
from jobs.management.commands._listing import add_who_and_why, who_and_why
from jobs.models import JobRunAttempt

POLL_SECONDS = 0.5
TIMEOUT_MAX_SECONDS = 3_600


class Command(BaseCommand):
    help = (
        "Drain the workers: every worker process stops taking messages (queued messages stay "
        "in their queues), and this waits until no run is executing. Exits 0 once drained, 1 "
        "if runs are still executing at the timeout. The drain lasts until `drain --end`; "
        "`drain --status` tells whether one is on."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--timeout",
            type=float,
            default=30.0,
            help="Seconds to wait for the runs in progress (default 30, at most 3600).",
        )
        what = parser.add_mutually_exclusive_group()
        what.add_argument(
            "--end", action="store_true", help="End the drain: the workers take messages again."
        )
        what.add_argument(
            "--status",
            action="store_true",
            help="Change nothing: tell whether the fleet drains and which runs are executing.",
        )
        add_who_and_why(parser)

    def handle(self, *args, **options) -> None:
        if options["status"]:
            self._status()
            return
        timeout = options["timeout"]
        if not 0 <= timeout <= TIMEOUT_MAX_SECONDS:
            raise CommandError(f"--timeout must be from 0 to {TIMEOUT_MAX_SECONDS} seconds")
        by, reason = who_and_why(options)
        try:
            if options["end"]:
                fleet_drain_end(by=by, reason=reason)
                self.stdout.write("Drain ended: the workers take messages again.")
                return
            fleet_drain_start(by=by, reason=reason)
        except StewardError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write("Draining: no worker takes a new message.")
        deadline = time.monotonic() + timeout
        while (executing := runs_executing()) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        if executing:
            raise CommandError(
                f"{len(executing)} run(s) still executing after {timeout:g} s: "
                f"{_listed(executing)}. "
                "The drain stays on; `manage.py drain --end` ends it."
            )
        self.stdout.write(
            self.style.SUCCESS(
                "Drained: no run is executing. The workers take no message until "
                "`manage.py drain --end`."
            )
        )

    def _status(self) -> None:
        drain = fleet_draining()
        if drain is None:
            self.stdout.write("Not draining: the workers take messages.")
        else:
            self.stdout.write(
                f"Draining since {drain.draining_since:%Y-%m-%d %H:%M:%S %Z}: no worker takes a "
                "new message until `manage.py drain --end`."
            )
        executing = runs_executing()
        listed = f": {_listed(executing)}" if executing else ""
        self.stdout.write(f"{len(executing)} run(s) executing{listed}.")


def _listed(executing: list[JobRunAttempt]) -> str:
    """The first ten runs executing, e.g. `#12 release_escrows on host-1234`."""
    return ", ".join(
        f"#{attempt.run_id} {attempt.run.job} on {attempt.worker}" for attempt in executing[:10]
    )
