"""The ledger's statuses and the changes allowed between them.

Each map is enforced where the change is written: services move rows with
`X_TRANSITIONS.update(...)`, or call `X_TRANSITIONS.check(...)` before a hand-written statement.
"""

from django.db import models

from jobs.transitions import Transitions


class MatchStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    EXPIRED = "expired", "Expired"


MATCH_TRANSITIONS = Transitions(
    {
        MatchStatus.PENDING: {MatchStatus.ACCEPTED, MatchStatus.EXPIRED},
        MatchStatus.ACCEPTED: set(),
        MatchStatus.EXPIRED: set(),
    }
)


class EscrowStatus(models.TextChoices):
    HOLDING = "holding", "Holding"
    RELEASED = "released", "Released"


ESCROW_TRANSITIONS = Transitions(
    {
        EscrowStatus.HOLDING: {EscrowStatus.RELEASED},
        EscrowStatus.RELEASED: set(),
    }
)


class CycleStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    OBLIGATED = "obligated", "Obligated"
    FULFILLED = "fulfilled", "Fulfilled"
    DEFAULTED = "defaulted", "Defaulted"


CYCLE_TRANSITIONS = Transitions(
    {
        CycleStatus.PENDING: {CycleStatus.OBLIGATED},
        CycleStatus.OBLIGATED: {CycleStatus.FULFILLED, CycleStatus.DEFAULTED},
        CycleStatus.FULFILLED: set(),
        CycleStatus.DEFAULTED: set(),
    }
)


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


# SENDING is claimed by one delivery; it never goes back to PENDING once the send may have
# happened, so a dedupe key is never sent twice.
NOTIFICATION_TRANSITIONS = Transitions(
    {
        NotificationStatus.PENDING: {NotificationStatus.SENDING},
        NotificationStatus.SENDING: {
            NotificationStatus.SENT,
            NotificationStatus.PENDING,
            NotificationStatus.FAILED,
        },
        NotificationStatus.SENT: set(),
        NotificationStatus.FAILED: set(),
    }
)
