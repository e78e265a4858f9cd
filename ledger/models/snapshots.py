"""Daily balance snapshots: every wallet and system account as the day's snapshot saw it."""

from django.db import models

from ledger.models.accounts import SystemAccount, Wallet


class BalanceSnapshot(models.Model):
    """One day's snapshot, with the totals the dashboard draws its trend from."""

    day = models.DateField(unique=True)
    taken_at = models.DateTimeField()
    # PostgreSQL's pg_snapshot the rows were read under: the transactions it saw. A transfer
    # booked by any other transaction is after the snapshot. Empty elsewhere than PostgreSQL,
    # where `taken_at` divides the transfers instead.
    seen_transactions = models.TextField(blank=True)
    wallets = models.PositiveIntegerField(default=0)
    accounts = models.PositiveIntegerField(default=0)
    total_spendable = models.BigIntegerField(default=0, help_text="In kobo.")
    total_receivable = models.BigIntegerField(default=0, help_text="In kobo.")
    total_coins = models.BigIntegerField(default=0)
    pools_money = models.BigIntegerField(
        default=0, help_text="In kobo: money in system accounts that are not sources (pools)."
    )
    job_run = models.ForeignKey(
        "jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"balances of {self.day.isoformat()}"

    @property
    def money_held(self) -> int:
        return self.total_spendable + self.total_receivable + self.pools_money


class WalletSnapshot(models.Model):
    snapshot = models.ForeignKey(BalanceSnapshot, on_delete=models.CASCADE, related_name="+")
    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="+")
    spendable_balance = models.BigIntegerField()
    receivable_balance = models.BigIntegerField()
    charity_coins = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["snapshot", "wallet"], name="walletsnapshot_once_per_day"
            ),
        ]

    def __str__(self) -> str:
        return f"wallet #{self.wallet_id} in snapshot #{self.snapshot_id}"


class AccountSnapshot(models.Model):
    snapshot = models.ForeignKey(BalanceSnapshot, on_delete=models.CASCADE, related_name="+")
    account = models.ForeignKey(SystemAccount, on_delete=models.PROTECT, related_name="+")
    balance = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["snapshot", "account"], name="accountsnapshot_once_per_day"
            ),
        ]

    def __str__(self) -> str:
        return f"account #{self.account_id} in snapshot #{self.snapshot_id}"
