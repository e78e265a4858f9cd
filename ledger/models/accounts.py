"""Accounts and the transfers between them: the only way a balance changes.

Money is integer minor units (kobo); Charity Coins are integers. The balances cached on wallets
and system accounts change only in the same transaction as their transfer, and CHECK
constraints keep them from going negative.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q


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
    MILESTONE_BONUS = "milestone_bonus", "Milestone bonus"


class TransferSubject(models.TextChoices):
    """The business object a booking belongs to, named in its own columns so that the
    reconciliation counts bookings per object and kind whatever their reference says."""

    DONATION = "donation", "Donation"
    ESCROW = "escrow", "Escrow"
    POOL = "pool", "Prize pool"
    MILESTONE = "milestone", "Milestone"


# Every booking of these kinds belongs to an object of this type.
SUBJECT_OF_KIND = {
    TransferKind.DONATION: TransferSubject.DONATION,
    TransferKind.ESCROW_RELEASE: TransferSubject.ESCROW,
    TransferKind.COIN_AWARD: TransferSubject.ESCROW,
    TransferKind.POOL_ENTRY_FEE: TransferSubject.POOL,
    TransferKind.PRIZE_PAYOUT: TransferSubject.POOL,
    TransferKind.MILESTONE_BONUS: TransferSubject.MILESTONE,
}


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
    subject_type = models.CharField(
        max_length=16, choices=TransferSubject.choices, blank=True, help_text="See subject_id."
    )
    subject_id = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="The donation, escrow, pool or milestone the booking belongs to.",
    )
    job_run = models.ForeignKey(
        "jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # PostgreSQL's id of the booking's transaction: a balance snapshot records which
    # transactions it saw, so the transfers after it are known exactly, even those whose
    # transaction was still open while the snapshot was taken. NULL elsewhere.
    xact = models.BigIntegerField(null=True, blank=True, editable=False)

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
            models.CheckConstraint(
                condition=Q(subject_type="", subject_id__isnull=True)
                | (~Q(subject_type="") & Q(subject_id__isnull=False)),
                name="transfer_subject_named_whole",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference}: {self.amount} {self.asset}"
