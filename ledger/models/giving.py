"""Matches, donations, their escrows and the pay-it-forward cycles they create.

The statuses and the changes allowed between them are in `ledger.statuses`.
"""

from django.db import models
from django.db.models import Q

from ledger.models.accounts import Wallet
from ledger.statuses import CycleStatus, EscrowStatus, MatchStatus


class Match(models.Model):
    donor = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="matches_as_donor")
    recipient = models.ForeignKey(
        Wallet, on_delete=models.PROTECT, related_name="matches_as_recipient"
    )
    amount = models.BigIntegerField(help_text="In kobo.")
    status = models.CharField(
        max_length=16, choices=MatchStatus.choices, default=MatchStatus.PENDING
    )
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)
    expired_by_run = models.ForeignKey(
        "jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "matches"
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="match_amount_positive"),
        ]
        indexes = [
            models.Index(
                fields=["expires_at", "id"],
                condition=Q(status="pending"),
                name="match_pending_due",
            ),
        ]

    def __str__(self) -> str:
        return f"match #{self.pk} ({self.status})"


class Donation(models.Model):
    reference = models.CharField(max_length=32, unique=True, help_text="TXN-YYYYMMDD-NNNNN")
    donor = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="donations_given")
    recipient = models.ForeignKey(
        Wallet, on_delete=models.PROTECT, related_name="donations_received"
    )
    amount = models.BigIntegerField(help_text="In kobo.")
    match = models.OneToOneField(
        Match, null=True, blank=True, on_delete=models.PROTECT, related_name="donation"
    )
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="donation_amount_positive"),
        ]

    def __str__(self) -> str:
        return self.reference


class Escrow(models.Model):
    """A received donation held in the recipient's receivable balance until `hold_until`."""

    donation = models.OneToOneField(Donation, on_delete=models.PROTECT, related_name="escrow")
    donor = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="+")
    recipient = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="escrows")
    amount = models.BigIntegerField(help_text="In kobo.")
    status = models.CharField(
        max_length=16, choices=EscrowStatus.choices, default=EscrowStatus.HOLDING
    )
    created_at = models.DateTimeField()
    hold_until = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)
    released_by_run = models.ForeignKey(
        "jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="escrow_amount_positive"),
            models.CheckConstraint(
                condition=Q(status="holding", released_at__isnull=True)
                | Q(status="released", released_at__isnull=False),
                name="escrow_released_at_matches_status",
            ),
        ]
        indexes = [
            models.Index(
                fields=["hold_until", "id"],
                condition=Q(status="holding"),
                name="escrow_holding_due",
            ),
        ]

    def __str__(self) -> str:
        return f"escrow #{self.pk} ({self.status})"


class DonationCycle(models.Model):
    """A recipient's pay-it-forward obligation for one received donation."""

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="cycles")
    donation = models.OneToOneField(Donation, on_delete=models.PROTECT, related_name="cycle")
    amount = models.BigIntegerField(help_text="In kobo: what the recipient owes forward.")
    status = models.CharField(
        max_length=16, choices=CycleStatus.choices, default=CycleStatus.PENDING
    )
    created_at = models.DateTimeField()
    obligated_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    defaulted_at = models.DateTimeField(null=True, blank=True)
    reminded_by_run = models.ForeignKey(
        "jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    defaulted_by_run = models.ForeignKey(
        "jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="cycle_amount_positive"),
            models.CheckConstraint(
                condition=Q(status="pending") | Q(due_at__isnull=False),
                name="cycle_due_at_once_obligated",
            ),
        ]
        indexes = [
            models.Index(
                fields=["due_at", "id"],
                condition=Q(status="obligated"),
                name="cycle_obligated_due",
            ),
        ]

    def __str__(self) -> str:
        return f"cycle #{self.pk} ({self.status})"
