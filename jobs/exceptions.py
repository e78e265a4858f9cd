"""Every error a surface reports derives from `StewardError`, in the engine and the domain apps.

Each class carries the HTTP status and the stable error code (one per family: `invalid`,
`not_found`, `conflict`) that the API answers with, so the API's exception handler maps the
base class once instead of each class by hand, and the admin, the dashboard and the commands
show the same message.
"""

from __future__ import annotations

from django.db import DataError, ProgrammingError

# The permissions that guard the engine's controls, named once for every surface.
TRIGGER_PERMISSION = "jobs.trigger_jobrun"
RETRY_PERMISSION = "jobs.retry_jobrun"
PAUSE_PERMISSION = "jobs.pause_jobstate"
VIEW_RUNS_PERMISSION = "jobs.view_jobrun"
REQUEUE_DEAD_PERMISSION = "jobs.requeue_dead"
VIEW_SCHEDULES_PERMISSION = "jobs.view_schedule"
ADD_SCHEDULES_PERMISSION = "jobs.add_schedule"
CHANGE_SCHEDULES_PERMISSION = "jobs.change_schedule"
DELETE_SCHEDULES_PERMISSION = "jobs.delete_schedule"
PAUSE_SCHEDULES_PERMISSION = "jobs.pause_schedule"
CANCEL_PERMISSION = "jobs.cancel_jobrun"
PAUSE_QUEUE_PERMISSION = "jobs.pause_queue"
CLEAR_QUEUE_PERMISSION = "jobs.clear_queue"
QUEUE_LIMITS_PERMISSION = "jobs.change_queue_limits"
DELETE_DEAD_PERMISSION = "jobs.delete_dead"
DRAIN_PERMISSION = "jobs.drain_fleet"
VIEW_AUDIT_PERMISSION = "jobs.view_controlaction"


class StewardError(Exception):
    """A refusal worth telling the person who asked: bad input, a conflict, a missing thing."""

    status_code = 400
    code = "invalid"
    # The input fields at fault and their messages, e.g. {"params.escrow_ids": ["..."]}.
    fields: dict[str, list[str]] = {}


class NotFoundError(StewardError):
    status_code = 404
    code = "not_found"


class ConflictError(StewardError):
    status_code = 409
    code = "conflict"


class UnknownJob(NotFoundError, LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown job {name!r}; known jobs: {', '.join(known) or 'none'}")
        self.name = name


class UnknownQueue(NotFoundError, LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown queue {name!r}; known queues: {', '.join(known)}")
        self.name = name


class CronError(StewardError, ValueError):
    """A cron spec or time zone that cannot be scheduled."""


class InvalidInput(StewardError, ValueError):
    """Input refused field by field: `fields` maps each field to its messages."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields
        super().__init__(
            "; ".join(f"{field}: {' '.join(messages)}" for field, messages in fields.items())
        )


class IdempotencyConflict(ConflictError):
    """An Idempotency-Key was used before for a different request."""


class RunNotRetryable(ConflictError):
    """Only failed runs are retried."""


class RunNotCancellable(ConflictError):
    """A finished run cannot be cancelled."""


class UnknownRun(NotFoundError, LookupError):
    def __init__(self, run_id: object) -> None:
        super().__init__(f"no run #{run_id}")
        self.run_id = run_id


class UnknownDeadLetter(NotFoundError, LookupError):
    def __init__(self, queue: str, message_id: str) -> None:
        super().__init__(f"no dead-lettered message {message_id!r} in queue {queue!r}")


class PermanentError(StewardError):
    """An error no retry can fix (an unsupported configuration, a value out of range): a job
    body raises it and its run fails at once, after one attempt."""

    status_code = 422
    code = "permanent_error"


# What the runner fails at once instead of retrying: a missing table or column, a value the
# database refuses, a date past what Python can count, and whatever a job says is permanent.
PERMANENT_ERRORS = (PermanentError, ProgrammingError, DataError, OverflowError)


class RunInterrupted(StewardError):
    """The worker is shutting down: the run stops between batches and is retried."""

    status_code = 503
    code = "interrupted"


class RunCancelled(StewardError):
    """An operator cancelled the run: it stops between batches and is not retried. `done`
    counts the `what` its committed batches handled."""

    status_code = 409
    code = "cancelled"

    def __init__(self, message: str, *, done: int = 0, what: str = "") -> None:
        super().__init__(message)
        self.done, self.what = done, what
