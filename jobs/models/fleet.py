"""The fleet: its processes' heartbeats, the queues' and the rate limits' runtime controls, the
drain, and the audit of every control action."""

from django.db import models


class WorkerHeartbeat(models.Model):
    """One live worker or scheduler process, beating every few seconds; a graceful stop
    removes it."""

    class Role(models.TextChoices):
        WORKER = "worker", "Worker"
        SCHEDULER = "scheduler", "Scheduler"

    name = models.CharField(max_length=128, primary_key=True, help_text="host:pid")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.WORKER)
    draining = models.BooleanField(
        default=False, help_text="Shutting down: it takes no new message, finishing its batch."
    )
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list)
    threads = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)
    attempts = models.JSONField(
        default=list, help_text="The runs and attempts it is executing: [{run, attempt}]."
    )
    slots = models.JSONField(
        default=dict,
        blank=True,
        help_text="The fleet-wide concurrency slots it holds, per queue; the rescue returns "
        "those of a worker that died holding them.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class QueueState(models.Model):
    """Runtime control of one queue (both of its lanes), obeyed by every worker within a
    couple of seconds; the history of changes is in ControlAction."""

    queue = models.CharField(max_length=64, primary_key=True)
    paused = models.BooleanField(default=False)
    concurrency = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The most runs of this queue executing at once across the fleet; empty: "
        "STEWARD_QUEUE_<NAME>_CONCURRENCY, or no limit.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["queue"]
        permissions = [
            ("pause_queue", "Can pause and resume queues"),
            ("clear_queue", "Can clear queues"),
            ("change_queue_limits", "Can change queue concurrency and rate limits"),
            ("delete_dead", "Can delete dead-lettered messages"),
            ("drain_fleet", "Can drain the workers and end a drain"),
        ]

    def __str__(self) -> str:
        return f"{self.queue} ({'paused' if self.paused else 'running'})"


class RateLimitSetting(models.Model):
    """A rate limit set at run time, over STEWARD_QUEUE_RATE_LIMITS: a queue's name limits the
    runs it starts; any other name (`channel-sms`) is drawn on by the jobs."""

    name = models.CharField(max_length=64, primary_key=True)
    limit = models.PositiveIntegerField()
    window_seconds = models.PositiveIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}={self.limit}/{self.window_seconds}s"


class FleetState(models.Model):
    """The one row saying whether the fleet is draining: no worker takes a new message."""

    draining = models.BooleanField(default=False)
    draining_since = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return "draining" if self.draining else "accepting"


class ControlAction(models.Model):
    """The audit of one control action: who did what to which queue, run, job, limit or the
    fleet, when, why, and the state before and after."""

    class Action(models.TextChoices):
        QUEUE_PAUSED = "queue_paused", "Queue paused"
        QUEUE_RESUMED = "queue_resumed", "Queue resumed"
        QUEUE_CLEARED = "queue_cleared", "Queue cleared"
        CONCURRENCY_CHANGED = "concurrency_changed", "Concurrency changed"
        RATE_LIMIT_CHANGED = "rate_limit_changed", "Rate limit changed"
        DEAD_REQUEUED = "dead_requeued", "Dead letters requeued"
        DEAD_DELETED = "dead_deleted", "Dead letters deleted"
        RUN_CANCELLED = "run_cancelled", "Run cancelled"
        JOB_PAUSED = "job_paused", "Job paused"
        JOB_RESUMED = "job_resumed", "Job resumed"
        DRAIN_STARTED = "drain_started", "Drain started"
        DRAIN_ENDED = "drain_ended", "Drain ended"

    class Target(models.TextChoices):
        QUEUE = "queue", "Queue"
        RUN = "run", "Run"
        JOB = "job", "Job"
        RATE_LIMIT = "rate_limit", "Rate limit"
        FLEET = "fleet", "Fleet"

    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    target_type = models.CharField(max_length=16, choices=Target.choices)
    target = models.CharField(max_length=150)
    actor = models.CharField(max_length=150, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    reason = models.TextField(blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["target_type", "target", "-id"], name="audit_target")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.target} by {self.actor or 'an operator'}"
