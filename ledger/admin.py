"""The ledger in the admin: read-only, since every change is a service's transfer or
transition; the one action runs the release job the schedule would run, and the page of a row
jobs change links to the runs that changed it."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from jobs.admin.tools import (
    EntityRunsLink,
    JobPermissions,
    MoneyFieldsAdmin,
    ReadOnlyAdmin,
    enqueue_job_action,
    money_display,
    nowrap,
    status_badge,
)
from jobs.panels import money_text
from ledger.models import (
    Asset,
    BalanceSnapshot,
    Donation,
    DonationCycle,
    Escrow,
    Match,
    Milestone,
    Notification,
    SystemAccount,
    Transfer,
    Wallet,
)
from ledger.selectors import money_text as ledger_money_text
from ledger.services.milestones import milestone_text
from ledger.services.transfers import WALLET_BUCKETS, wallet_account
from ledger.statuses import EscrowStatus

WALLET_TRANSFERS_SHOWN = 50


def _minute(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def run_link(run_id: int | None):
    """The run that wrote a row, linked to its page; "—" for none (a service called
    outside a run, or a run since pruned)."""
    if run_id is None:
        return "—"
    url = reverse("admin:jobs_jobrun_change", args=[run_id])
    return format_html('<a href="{}">run #{}</a>', url, run_id)


def asset_amount(amount: int, asset: str) -> str:
    """Money with the currency, Charity Coins counted: "₦1,234.56", "1,500 coins"."""
    return money_text(amount) if asset == Asset.MONEY else f"{amount:,} coins"


class LedgerAdmin(MoneyFieldsAdmin, ReadOnlyAdmin):
    """Read-only, amounts in kobo shown with the currency in the list and on the page."""

    money_fields = ("amount",)
    amount_text = money_display("amount")


@admin.register(Wallet)
class WalletAdmin(EntityRunsLink, LedgerAdmin):
    run_entity = "wallet"
    money_fields = ("spendable_balance", "receivable_balance")
    spendable_balance_text = money_display("spendable_balance", "spendable")
    receivable_balance_text = money_display("receivable_balance", "receivable")
    list_display = (
        "id",
        "user",
        "spendable_balance_text",
        "receivable_balance_text",
        "coins",
        "trust_score",
        "created_at",
    )
    search_fields = ("=id", "user__username", "user__email")
    list_select_related = ("user",)
    readonly_fields = (
        "user",
        "spendable_balance",
        "receivable_balance",
        "coins",
        "trust_score",
        "created_at",
        "transfers",
    )

    @admin.display(description="charity coins", ordering="charity_coins")
    def coins(self, wallet: Wallet):
        return nowrap(f"{wallet.charity_coins:,}")

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
                    nowrap(asset_amount(row.amount, row.asset)),
                    row.get_asset_display(),
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
    list_display = ("code", "asset", "balance_text", "allow_negative")

    @admin.display(description="balance", ordering="balance")
    def balance_text(self, account: SystemAccount):
        return nowrap(asset_amount(account.balance, account.asset))


@admin.register(Donation)
class DonationAdmin(LedgerAdmin):
    list_display = ("reference", "donor", "recipient", "amount_text", "created_at")
    search_fields = ("reference",)
    date_hierarchy = "created_at"


@admin.register(Match)
class MatchAdmin(EntityRunsLink, LedgerAdmin):
    run_entity = "match"
    list_display = (
        "id",
        "donor",
        "recipient",
        "amount_text",
        "status_text",
        "created_at",
        "expires_at",
    )
    list_filter = ("status",)

    @admin.display(description="status", ordering="status")
    def status_text(self, match: Match):
        return status_badge(match.status, match.get_status_display())


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
class EscrowAdmin(EntityRunsLink, JobPermissions, LedgerAdmin):
    run_entity = "escrow"
    list_display = (
        "id",
        "donation",
        "recipient",
        "amount_text",
        "status_text",
        "timing",
    )
    list_filter = ("status", DueFilter)
    list_select_related = ("donation", "recipient")
    search_fields = ("=id", "donation__reference")
    actions = ["release_due_escrows"]

    @admin.display(description="status", ordering="status")
    def status_text(self, escrow: Escrow):
        """Holding past its hold: "due" for the next release run, "overdue" (red) once it
        waits longer than ESCROW_LAG_ALERT_MINUTES, when the lag monitor alerts."""
        now = timezone.now()
        if escrow.status == EscrowStatus.HOLDING and escrow.hold_until <= now:
            alert_after = timedelta(minutes=settings.ESCROW_LAG_ALERT_MINUTES)
            if now - escrow.hold_until > alert_after:
                return status_badge("failed", "overdue")
            return status_badge("partial", "due")
        return status_badge(escrow.status, escrow.get_status_display())

    @admin.display(description="hold ends / released", ordering="hold_until")
    def timing(self, escrow: Escrow):
        """When the hold ends while holding; when, and by which run, once released."""
        if escrow.released_at is None:
            return nowrap(_minute(escrow.hold_until))
        if escrow.released_by_run_id is None:
            return format_html("released {}", nowrap(_minute(escrow.released_at)))
        url = reverse("admin:jobs_jobrun_change", args=[escrow.released_by_run_id])
        return format_html(
            'released {} by <a href="{}">run #{}</a>',
            nowrap(_minute(escrow.released_at)),
            url,
            escrow.released_by_run_id,
        )

    @admin.action(description="Release due escrows now", permissions=["trigger"])
    def release_due_escrows(self, request, queryset):
        return enqueue_job_action(
            self, request, job="release_escrows", label="Release due escrows now"
        )


@admin.register(DonationCycle)
class DonationCycleAdmin(EntityRunsLink, LedgerAdmin):
    run_entity = "cycle"
    list_display = ("id", "wallet", "amount_text", "status_text", "due_at", "reminded_at")
    list_filter = ("status",)

    @admin.display(description="status", ordering="status")
    def status_text(self, cycle: DonationCycle):
        return status_badge(cycle.status, cycle.get_status_display())


@admin.register(Transfer)
class TransferAdmin(MoneyFieldsAdmin, ReadOnlyAdmin):
    money_fields = ("amount",)
    list_display = (
        "reference",
        "kind",
        "asset",
        "amount_text",
        "debit_account",
        "credit_account",
        "job_run",
        "created_at",
    )
    list_filter = ("kind", "asset")
    search_fields = ("reference", "debit_account", "credit_account")

    @admin.display(description="amount", ordering="amount")
    def amount_text(self, transfer: Transfer):
        return nowrap(asset_amount(transfer.amount, transfer.asset))


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("dedupe_key", "user", "channel", "kind", "status", "attempts", "created_at")
    list_filter = ("status", "channel", "kind")
    search_fields = ("dedupe_key", "user__username")


@admin.register(Milestone)
class MilestoneAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "milestone", "value_text", "reached_at", "bonus", "run")
    list_filter = ("kind", "threshold")
    list_select_related = ("user",)
    search_fields = ("=user__id", "user__username", "user__email")
    date_hierarchy = "reached_at"
    fields = ("user", "kind", "threshold", "value", "reached_at", "bonus", "run")
    readonly_fields = fields

    @admin.display(description="milestone", ordering="kind")
    def milestone(self, milestone: Milestone):
        return nowrap(milestone_text(milestone.kind, milestone.threshold))

    @admin.display(description="had", ordering="value")
    def value_text(self, milestone: Milestone):
        return nowrap(f"{milestone.value:,}")

    @admin.display(description="bonus", ordering="bonus_coins")
    def bonus(self, milestone: Milestone):
        return nowrap(asset_amount(milestone.bonus_coins, Asset.COINS))

    @admin.display(description="run", ordering="job_run")
    def run(self, milestone: Milestone):
        return run_link(milestone.job_run_id)


def snapshot_money(field: str, description: str):
    @admin.display(description=description, ordering=field)
    def show(_modeladmin, snapshot: BalanceSnapshot):
        return nowrap(ledger_money_text(getattr(snapshot, field)))

    return show


@admin.register(BalanceSnapshot)
class BalanceSnapshotAdmin(ReadOnlyAdmin):
    list_display = (
        "day",
        "taken_at",
        "wallets",
        "accounts",
        "money_held_text",
        "total_spendable_text",
        "total_receivable_text",
        "pools_money_text",
        "coins",
        "run",
    )
    date_hierarchy = "day"
    fields = list_display
    readonly_fields = fields
    total_spendable_text = snapshot_money("total_spendable", "spendable")
    total_receivable_text = snapshot_money("total_receivable", "receivable")
    pools_money_text = snapshot_money("pools_money", "in pools")

    @admin.display(description="money held")
    def money_held_text(self, snapshot: BalanceSnapshot):
        return nowrap(ledger_money_text(snapshot.money_held))

    @admin.display(description="charity coins", ordering="total_coins")
    def coins(self, snapshot: BalanceSnapshot):
        return nowrap(asset_amount(snapshot.total_coins, Asset.COINS))

    @admin.display(description="run", ordering="job_run")
    def run(self, snapshot: BalanceSnapshot):
        return run_link(snapshot.job_run_id)
