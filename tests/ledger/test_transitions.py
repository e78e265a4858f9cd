"""The ledger's status maps are read where the statuses change: a change a map does not list
is refused before anything is written, and a row another worker moved first is left alone."""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from jobs.transitions import TransitionNotAllowed
from ledger.channels import channel_backend
from ledger.models import Channel, Donation, Escrow, Notification
from ledger.services.cycles import cycles_remind_and_default
from ledger.services.delivery import notifications_deliver_due
from ledger.services.donations import LedgerError, cycle_fulfil, match_accept
from ledger.services.escrows import escrows_release_due
from ledger.services.matches import matches_expire_due
from ledger.services.notifications import NotificationDraft, notifications_queue
from ledger.statuses import (
    CYCLE_TRANSITIONS,
    ESCROW_TRANSITIONS,
    MATCH_TRANSITIONS,
    NOTIFICATION_TRANSITIONS,
    CycleStatus,
    EscrowStatus,
    MatchStatus,
    NotificationStatus,
)
from tests.factories import HOLD, UserFactory, donation_at, funded_wallet, match_at, obligated_cycle

AS_OF = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EXPIRY = timedelta(hours=settings.MATCH_EXPIRY_HOURS)


@pytest.mark.parametrize(
    ("transitions", "source", "target"),
    [
        (MATCH_TRANSITIONS, MatchStatus.EXPIRED, MatchStatus.ACCEPTED),
        (ESCROW_TRANSITIONS, EscrowStatus.RELEASED, EscrowStatus.HOLDING),
        (CYCLE_TRANSITIONS, CycleStatus.DEFAULTED, CycleStatus.FULFILLED),
        (NOTIFICATION_TRANSITIONS, NotificationStatus.SENT, NotificationStatus.PENDING),
    ],
    ids=["match", "escrow", "cycle", "notification"],
)
def test_a_change_the_map_does_not_list_is_refused(transitions, source, target):
    # given a final status, when asked to leave it, then the map refuses
    with pytest.raises(TransitionNotAllowed):
        transitions.check(source={source}, target=target)


@pytest.mark.django_db
def test_accepting_a_match_that_expired_meanwhile_leaves_it_expired():
    # given a match the expiry job moved to expired
    match = match_at(at=AS_OF - EXPIRY, donor=funded_wallet())
    assert matches_expire_due(as_of=AS_OF)["matches_expired"] == 1

    # when its donor accepts it on a clock that still sees it unexpired
    with pytest.raises(LedgerError):
        match_accept(match=match, at=AS_OF - timedelta(minutes=1))

    # then the conditional update moved nothing
    match.refresh_from_db()
    assert match.status == MatchStatus.EXPIRED
    assert match.accepted_at is None
    assert not Donation.objects.filter(match=match).exists()


@pytest.mark.django_db
def test_the_release_statement_is_checked_against_the_escrow_map(monkeypatch):
    # given a due escrow, and an escrow map that does not let holding become released
    donation = donation_at(at=AS_OF - HOLD)
    monkeypatch.setattr(ESCROW_TRANSITIONS, "allowed", {EscrowStatus.HOLDING: frozenset()})

    # when the release runs, then it refuses before writing anything
    with pytest.raises(TransitionNotAllowed):
        escrows_release_due(as_of=AS_OF)
    escrow = Escrow.objects.get(donation=donation)
    assert escrow.status == EscrowStatus.HOLDING
    assert escrow.released_at is None


@pytest.mark.django_db
def test_fulfilling_a_cycle_that_defaulted_meanwhile_leaves_it_defaulted():
    # given an obligated cycle the default sweep moved to defaulted
    cycle = obligated_cycle(due_at=AS_OF - timedelta(hours=1))
    assert cycles_remind_and_default(as_of=AS_OF)["cycles_defaulted"] == 1

    # when its wallet fulfils it after all
    with pytest.raises(LedgerError):
        cycle_fulfil(cycle=cycle, at=AS_OF)

    # then the conditional update moved nothing
    cycle.refresh_from_db()
    assert cycle.status == CycleStatus.DEFAULTED
    assert cycle.fulfilled_at is None


class OvertakenChannel:
    """Sends so slowly that another worker's lost-send sweep fails the row meanwhile."""

    def send(self, notification) -> None:
        Notification.objects.filter(pk=notification.pk).update(
            status=NotificationStatus.FAILED, last_error="lost meanwhile"
        )


@pytest.fixture
def overtaken_push(settings):
    settings.STEWARD_CHANNEL_BACKENDS = {
        **settings.STEWARD_CHANNEL_BACKENDS,
        "push": f"{__name__}.OvertakenChannel",
    }
    settings.STEWARD_QUEUE_RATE_LIMITS = ""
    channel_backend.cache_clear()
    yield
    channel_backend.cache_clear()


@pytest.mark.django_db
def test_a_send_that_ends_after_its_row_was_failed_leaves_it_failed(overtaken_push):
    # given a pending push whose send outlives its claim
    user = UserFactory()
    notifications_queue(
        drafts=[NotificationDraft(user.pk, Channel.PUSH, "test_kind", "overtaken", {})]
    )

    # when delivery sends it
    notifications_deliver_due(as_of=timezone.now())

    # then marking it sent (sending -> sent) left the failed row as the sweep wrote it
    notification = Notification.objects.get(dedupe_key="overtaken")
    assert notification.status == NotificationStatus.FAILED
    assert notification.last_error == "lost meanwhile"
    assert notification.sent_at is None
