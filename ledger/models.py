"""Wallets, donations, matches, escrows, cycles, transfers and the notification outbox.

Money is integer minor units (kobo); Charity Coins are integers. Every balance change is a
Transfer row; the balances cached on wallets and system accounts change only in the same
transaction as their transfer, and CHECK constraints keep them from going negative. The
statuses and the changes allowed between them are in `ledger.statuses`.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from ledger.statuses import CycleStatus, EscrowStatus, MatchStatus, NotificationStatus


class Asset(models.TextChoices):
    MONEY = "money", "Money (kobo)"
    COINS = "coins", "Charity Coins"


class Wallet(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="wallet"
    )
    spendable_balance = models.BigIntegerField(default=0, help_text="In kobo.")
    receivable_balance = models.BigIntegerField(
        default=0, help_text="In kobo: received donations still in their escrow hold."
    )
    charity_coins = models.BigIntegerField(default=0)
    trust_score = models.DecimalField(max_digits=3, decimal_places=2, default=Decimal("1.00"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(spendable_balance__gte=0), name="wallet_spendable_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(receivable_balance__gte=0), name="wallet_receivable_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(charity_coins__gte=0), name="wallet_coins_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(trust_score__gte=0) & Q(trust_score__lte=1),
                name="wallet_trust_score_in_unit_range",
            ),
        ]

    def __str__(self) -> str:
        return f"wallet #{self.pk}"


class SystemAccount(models.Model):
    """A ledger account that is not a user's wallet: the outside world, coin issuance, pools."""

    code = models.CharField(max_length=64, unique=True)
    asset = models.CharField(max_length=8, choices=Asset.choices)
    balance = models.BigIntegerField(default=0)
    allow_negative = models.BooleanField(
        default=False, help_text="Sources such as the outside world or coin issuance."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(allow_negative=True) | Q(balance__gte=0),
                name="systemaccount_balance_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class TransferKind(models.TextChoices):
    DEPOSIT = "deposit", "Deposit"
    DONATION = "donation", "Donation into escrow"
    ESCROW_RELEASE = "escrow_release", "Escrow release"
    COIN_AWARD = "coin_award", "Charity Coin award"
    POOL_ENTRY_FEE = "pool_entry_fee", "Prize pool entry fee"
    PRIZE_PAYOUT = "prize_payout", "Prize payout"


class Transfer(models.Model):
    """One double-entry movement: `amount` leaves `debit_account` and enters `credit_account`.

    The id is a uuid5 of the business event (`reference`), so the same event can never be
    booked twice.
    """

    id = models.UUIDField(primary_key=True, editable=False)
    reference = models.CharField(max_length=128)
    kind = models.CharField(max_length=32, choices=TransferKind.choices)
    asset = models.CharField(max_length=8, choices=Asset.choices)
    amount = models.BigIntegerField()
    debit_account = models.CharField(max_length=64)
    credit_account = models.CharField(max_length=64)
    job_run = models.ForeignKey(
        "jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        # Declared here rather than as unique=True/db_index=True: on PostgreSQL those add a
        # second, varchar_pattern_ops index per column, which every booking would also write
        # and nothing queries (accounts are looked up by exact code).
        indexes = [
            models.Index(fields=["debit_account"], name="transfer_debit_account"),
            models.Index(fields=["credit_account"], name="transfer_credit_account"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["reference"], name="transfer_reference_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="transfer_amount_positive"),
            models.CheckConstraint(
                condition=~Q(debit_account=F("credit_account")),
                name="transfer_accounts_differ",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference}: {self.amount} {self.asset}"


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


class Channel(models.TextChoices):
    PUSH = "push", "Push"
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"


class Notification(models.Model):
    """An outbox row, written in the same transaction as the state change it announces."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    kind = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    dedupe_key = models.CharField(max_length=128)
    status = models.CharField(
        max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["id"], condition=Q(status="pending"), name="notification_pending"),
        ]
        # A constraint, not unique=True: no pattern-ops index for every outbox write to keep.
        constraints = [
            models.UniqueConstraint(fields=["dedupe_key"], name="notification_dedupe_key_unique"),
        ]

    def __str__(self) -> str:
        return self.dedupe_key
