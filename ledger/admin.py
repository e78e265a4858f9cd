"""The ledger in the admin: read-only, since every change is a service's transfer or
transition; the one action runs the release job the schedule would run."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from jobs.admin.tools import JobPermissions, ReadOnlyAdmin, enqueue_job_action
from ledger.models import (
    Donation,
    DonationCycle,
    Escrow,
    Match,
    Notification,
    SystemAccount,
    Transfer,
    Wallet,
)
from ledger.services.transfers import WALLET_BUCKETS, wallet_account
from ledger.statuses import EscrowStatus

WALLET_TRANSFERS_SHOWN = 50


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "user",
        "spendable_balance",
        "receivable_balance",
        "charity_coins",
        "trust_score",
        "created_at",
    )
    search_fields = ("=id", "user__username", "user__email")
    list_select_related = ("user",)
    readonly_fields = (
        "user",
        "spendable_balance",
        "receivable_balance",
        "charity_coins",
        "trust_score",
        "created_at",
        "transfers",
    )

    @admin.display(description=f"latest {WALLET_TRANSFERS_SHOWN} transfers")
    def transfers(self, wallet: Wallet):
        # Transfers name wallet accounts by code ("wallet:<id>:<bucket>"), not by foreign key;
        # exact codes use the account indexes.
        codes = [wallet_account(wallet.pk, bucket) for bucket in WALLET_BUCKETS]
        rows = Transfer.objects.filter(
            Q(debit_account__in=codes) | Q(credit_account__in=codes)
        ).order_by("-created_at")[:WALLET_TRANSFERS_SHOWN]
        if not rows:
            return "none"
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    timezone.localtime(row.created_at).strftime("%Y-%m-%d %H:%M"),
                    row.get_kind_display(),
                    row.amount,
                    row.asset,
                    row.debit_account,
                    row.credit_account,
                )
                for row in rows
            ),
        )
        return format_html(
            "<table><thead><tr><th>when</th><th>kind</th><th>amount</th><th>asset</th>"
            "<th>from</th><th>to</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )


@admin.register(SystemAccount)
class SystemAccountAdmin(ReadOnlyAdmin):
    list_display = ("code", "asset", "balance", "allow_negative")


@admin.register(Donation)
class DonationAdmin(ReadOnlyAdmin):
    list_display = ("reference", "donor", "recipient", "amount", "created_at")
    search_fields = ("reference",)
    date_hierarchy = "created_at"


@admin.register(Match)
class MatchAdmin(ReadOnlyAdmin):
    list_display = ("id", "donor", "recipient", "amount", "status", "created_at", "expires_at")
    list_filter = ("status",)


class DueFilter(admin.SimpleListFilter):
    title = "due for release"
    parameter_name = "due"

    def lookups(self, request, model_admin):
        return [("overdue", "Hold ended, still holding"), ("holding", "Hold not ended yet")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "overdue":
            return queryset.filter(status=EscrowStatus.HOLDING, hold_until__lte=now)
        if self.value() == "holding":
            return queryset.filter(status=EscrowStatus.HOLDING, hold_until__gt=now)
        return queryset


@admin.register(Escrow)
class EscrowAdmin(JobPermissions, ReadOnlyAdmin):
    list_display = (
        "id",
        "donation",
        "recipient",
        "amount",
        "status",
        "hold_until",
        "released_at",
        "released_by_run",
    )
    list_filter = ("status", DueFilter)
    search_fields = ("=id", "donation__reference")
    actions = ["release_due_escrows"]

    @admin.action(description="Release due escrows now", permissions=["trigger"])
    def release_due_escrows(self, request, queryset):
        return enqueue_job_action(
            self, request, job="release_escrows", label="Release due escrows now"
        )


@admin.register(DonationCycle)
class DonationCycleAdmin(ReadOnlyAdmin):
    list_display = ("id", "wallet", "amount", "status", "due_at", "reminded_at")
    list_filter = ("status",)


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdmin):
    list_display = (
        "reference",
        "kind",
        "asset",
        "amount",
        "debit_account",
        "credit_account",
        "job_run",
        "created_at",
    )
    list_filter = ("kind", "asset")
    search_fields = ("reference", "debit_account", "credit_account")


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("dedupe_key", "user", "channel", "kind", "status", "attempts", "created_at")
    list_filter = ("status", "channel", "kind")
    search_fields = ("dedupe_key", "user__username")
