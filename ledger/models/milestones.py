"""Users' milestones: reached once each, announced once, their bonus booked once."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class MilestoneKind(models.TextChoices):
    CYCLES_FULFILLED = "cycles_fulfilled", "Fulfilled cycles"
    COINS_HELD = "coins_held", "Charity Coins held"


class Milestone(models.Model):
    """A user reaching `threshold` of `kind` (the 5th fulfilled cycle, 1,000 coins held)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="milestones"
    )
    kind = models.CharField(max_length=32, choices=MilestoneKind.choices)
    threshold = models.BigIntegerField()
    value = models.BigIntegerField(help_text="What the user had when the milestone was found.")
    reached_at = models.DateTimeField()
    bonus_coins = models.BigIntegerField(default=0, help_text="The Charity Coins it earned.")
    job_run = models.ForeignKey(
        "jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "kind", "threshold"], name="milestone_once_per_user"
            ),
            models.CheckConstraint(
                condition=Q(threshold__gt=0), name="milestone_threshold_positive"
            ),
            models.CheckConstraint(
                condition=Q(bonus_coins__gte=0), name="milestone_bonus_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.threshold:,} (user #{self.user_id})"
