"""`manage.py runworker`: django_dramatiq's `rundramatiq`, with a stop that gives each run
STEWARD_SHUTDOWN_TIMEOUT seconds to finish its batch and hand the rest back."""

from django_dramatiq.management.commands.rundramatiq import Command as RunDramatiq

from jobs.conf import conf


class Command(RunDramatiq):
    help = (
        "Run Steward's worker processes. On SIGTERM each stops taking messages, lets its runs "
        "finish the batch they are in (STEWARD_SHUTDOWN_TIMEOUT seconds at most), hands the "
        "rest of each run back to the queue and exits 0."
    )

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.set_defaults(worker_shutdown_timeout=conf.SHUTDOWN_TIMEOUT * 1000)
