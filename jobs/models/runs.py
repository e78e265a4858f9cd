"""Runs and their attempts, the status map they move by, and each job's runtime state."""

from django.db import models
from django.db.models import Q

from jobs.transitions import Transitions


class Trigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    ADMIN = "admin", "Admin"
    API = "api", "API"
    CLI = "cli", "CLI"
    RETRY = "retry", "Retry"
    FOLLOW_UP = "follow_up", "Follow-up"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting for its shards"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Partial"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    LOST = "lost", "Lost"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATUSES = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.PARTIAL,
        RunStatus.FAILED,
        RunStatus.SKIPPED,
        RunStatus.LOST,
        RunStatus.CANCELLED,
    }
)

# The one map of allowed status changes. RUNNING -> RUNNING is a takeover of a run whose
# worker died (its job lock vanished with its connection); RUNNING -> QUEUED waits for a retry;
# RUNNING -> WAITING hands a large backlog to shard runs, and the last shard ends the parent.
# A run whose message was lost goes QUEUED -> QUEUED when it is re-sent, or -> LOST when a later
# run already did its work; a run whose worker died goes RUNNING -> QUEUED to be re-sent. An
# operator cancels a queued run at once, a running one at its next batch boundary, and a
# waiting one once its shards have ended.
RUN_TRANSITIONS = Transitions(
    {
        RunStatus.QUEUED: {
            RunStatus.RUNNING,
            RunStatus.SKIPPED,
            RunStatus.QUEUED,
            RunStatus.LOST,
            RunStatus.CANCELLED,
        },
        RunStatus.RUNNING: {
            RunStatus.RUNNING,
            RunStatus.QUEUED,
            RunStatus.WAITING,
            RunStatus.SUCCEEDED,
            RunStatus.PARTIAL,
            RunStatus.FAILED,
            RunStatus.LOST,
            RunStatus.CANCELLED,
        },
        RunStatus.WAITING: {
            RunStatus.SUCCEEDED,
            RunStatus.PARTIAL,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
        },
    }
)


class JobRun(models.Model):
    """One logical run of a job, written before its message is sent."""

    job = models.CharField(max_length=64, db_index=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    requested_by = models.CharField(max_length=150, blank=True)
    reason = models.TextField(blank=True)
    as_of = models.DateTimeField(help_text="The run handles everything due as of this time.")
    slot = models.DateTimeField(
        null=True, blank=True, help_text="Schedule slot (UTC minute) for scheduled runs."
    )
    dry_run = models.BooleanField(default=False)
    status = models.CharField(
        max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    status_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    message_id = models.CharField(max_length=64, blank=True)
    code_version = models.CharField(max_length=64, blank=True)
    params = models.JSONField(
        default=dict, blank=True, help_text="The run's validated parameters, e.g. escrow_ids."
    )
    lock_scope = models.CharField(
        max_length=32,
        blank=True,
        help_text="Empty: the run holds its whole job's lock; else the lock of its parameters.",
    )
    schedule = models.ForeignKey(
        "jobs.Schedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
        help_text="The schedule whose slot this run is.",
    )
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    # NULL, not "", for a run without a key: the per-user unique constraint leaves those out.
    idempotency_key = models.CharField(  # noqa: DJ001
        max_length=255,
        null=True,
        blank=True,
        help_text="The client's Idempotency-Key: the same key from the same user always "
        "answers with this run.",
    )
    request_fingerprint = models.CharField(
        max_length=64, blank=True, help_text="Hash of the request that used the key."
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="shards",
        help_text="The fanned-out run this shard belongs to.",
    )
    follow_up_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="follow_ups",
        help_text="The run whose outcome requested this one (its job spec's follow-ups).",
    )
    shard = models.JSONField(
        null=True, blank=True, help_text="This shard's slice of the work, e.g. a pk range."
    )
    repairs = models.JSONField(
        default=list,
        blank=True,
        help_text="What rescued the run: a lost message re-sent, a dead worker's attempt "
        "taken back.",
    )
    progress = models.JSONField(
        default=dict,
        blank=True,
        help_text="While it runs, saved every few seconds: {done, total, what, batches, "
        "per_second, seconds_left, at}.",
    )
    urgent = models.BooleanField(
        default=False,
        help_text="Sent to its queue's urgent lane, which workers take from first: a targeted "
        "run, or one asked for as urgent.",
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.CharField(max_length=150, blank=True)
    cancel_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "slot"],
                condition=Q(schedule__isnull=False, slot__isnull=False),
                name="jobrun_one_run_per_schedule_slot",
            ),
            # A run's follow-up of one job is requested once, however often its end is seen.
            models.UniqueConstraint(
                fields=["follow_up_of", "job"],
                condition=Q(follow_up_of__isnull=False),
                name="jobrun_one_follow_up_per_job",
            ),
            # Per user: another user's key, however equal, is another request.
            models.UniqueConstraint(
                fields=["requested_by", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="jobrun_one_run_per_idempotency_key",
            ),
        ]
        indexes = [models.Index(fields=["job", "-id"], name="jobrun_job_recent")]
        permissions = [
            ("trigger_jobrun", "Can trigger job runs"),
            ("retry_jobrun", "Can retry failed job runs"),
            ("requeue_dead", "Can requeue dead-lettered messages"),
            ("cancel_jobrun", "Can cancel job runs"),
        ]

    # Set by `job_run_request` on a run it answered with again: an Idempotency-Key replay, or
    # the retry already in flight.
    replayed = False

    def __str__(self) -> str:
        return f"{self.job} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class AttemptStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ABANDONED = "abandoned", "Abandoned"
    CANCELLED = "cancelled", "Cancelled"


class JobRunAttempt(models.Model):
    """One execution attempt of a run; retries add rows, never overwrite them."""

    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveSmallIntegerField()
    status = models.CharField(
        max_length=16, choices=AttemptStatus.choices, default=AttemptStatus.RUNNING
    )
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=128, blank=True)
    message_id = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    queued_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When its message was last sent (or, delayed, came due) for a worker to take.",
    )
    wait_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="How long its message waited for a worker."
    )
    log = models.JSONField(
        default=list,
        blank=True,
        help_text="The lines the attempt logged, the last STEWARD_RUN_LOG_LINES of them: "
        "[{at, level, line}].",
    )

    class Meta:
        ordering = ["run_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="jobrunattempt_unique_number"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of run #{self.run_id}"

    @property
    def duration_ms(self) -> int | None:
        if self.finished_at is None:
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)


class JobState(models.Model):
    """Runtime control of one job, editable without a restart."""

    job = models.CharField(max_length=64, primary_key=True)
    paused = models.BooleanField(default=False)
    changed_by = models.CharField(max_length=150, blank=True)
    change_reason = models.TextField(blank=True)
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job"]
        permissions = [("pause_jobstate", "Can pause and resume jobs")]

    def __str__(self) -> str:
        return f"{self.job} ({'paused' if self.paused else 'enabled'})"


def run_move(run_id: int, *, source: set[str], target: str, **fields) -> bool:
    """Conditionally move a run from one of `source` to `target`; False if it was not there."""
    moved = RUN_TRANSITIONS.update(
        JobRun.objects.filter(pk=run_id), source=source, target=target, **fields
    )
    return moved == 1


def cancel_text(by: str, reason: str) -> str:
    """How a cancelled run's status reason names who cancelled it and why."""
    return f"cancelled by {by or 'an operator'}" + (f": {reason}" if reason else "")
