"""The ledger's models, one module per part: accounts and transfers, giving (matches,
donations, escrows, cycles), the outbox, milestones and balance snapshots."""

from ledger.models.accounts import (
    SUBJECT_OF_KIND,
    Asset,
    SystemAccount,
    Transfer,
    TransferKind,
    TransferSubject,
    Wallet,
)
from ledger.models.giving import Donation, DonationCycle, Escrow, Match
from ledger.models.milestones import Milestone, MilestoneKind
from ledger.models.outbox import Channel, Notification
from ledger.models.snapshots import AccountSnapshot, BalanceSnapshot, WalletSnapshot

__all__ = [
    "SUBJECT_OF_KIND",
    "AccountSnapshot",
    "Asset",
    "BalanceSnapshot",
    "Channel",
    "Donation",
    "DonationCycle",
    "Escrow",
    "Match",
    "Milestone",
    "MilestoneKind",
    "Notification",
    "SystemAccount",
    "Transfer",
    "TransferKind",
    "TransferSubject",
    "Wallet",
    "WalletSnapshot",
]
