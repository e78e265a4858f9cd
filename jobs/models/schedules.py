"""Schedules as rows, and the audit of their changes."""

from django.db import models


class Schedule(models.Model):
    """When a job runs by itself, with which parameters, in which time zone: a row operators
    edit at run time; the scheduler's minute tick reads them all."""

    name = models.CharField(max_length=100, unique=True)
    job = models.CharField(max_length=64, db_index=True)
    cron = models.CharField(max_length=100)
    timezone = models.CharField(max_length=64, default="UTC", help_text="An IANA time zone.")
    params = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True, help_text="A paused schedule's slots are skipped.")
    catch_up = models.BooleanField(
        default=False,
        help_text="When the scheduler comes back, run the latest missed slot once.",
    )
    max_retries = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Overrides the job's retries for this schedule's runs."
    )
    min_backoff_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Overrides the job's first retry backoff."
    )
    notes = models.TextField(blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    updated_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    next_slot = models.DateTimeField(
        null=True,
        blank=True,
        db_index=True,
        help_text="The slot the scheduler records next (UTC); earlier ones are done or missed. "
        "Empty: from the schedule's creation.",
    )

    class Meta:
        ordering = ["job", "name"]
        permissions = [("pause_schedule", "Can pause and resume schedules")]

    def __str__(self) -> str:
        return self.name


class ScheduleChange(models.Model):
    """The audit of one change to a schedule: who, when, why, before and after."""

    class Action(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        PAUSED = "paused", "Paused"
        RESUMED = "resumed", "Resumed"
        REMOVED = "removed", "Removed"

    schedule = models.ForeignKey(
        Schedule, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes"
    )
    schedule_name = models.CharField(max_length=100)
    job = models.CharField(max_length=64)
    action = models.CharField(max_length=16, choices=Action.choices)
    changed_by = models.CharField(max_length=150, blank=True)
    changed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    reason = models.TextField(blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.schedule_name} {self.action} by {self.changed_by or 'an operator'}"
