"""The expire_matches job, run through the runner: boundary, full effect, idempotence, dry run."""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from jobs.models import RunStatus
from ledger.models import Match, Notification
from ledger.services.donations import match_accept
from ledger.statuses import MatchStatus
from tests.factories import funded_wallet, match_at
from tests.ledger.helpers import counts_of, ledger_snapshot, run_job

pytestmark = pytest.mark.django_db

AS_OF = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EXPIRY = timedelta(hours=settings.MATCH_EXPIRY_HOURS)
MICROSECOND = timedelta(microseconds=1)
COUNT_KEYS = ("matches_expired", "amount_unmatched", "notifications_queued", "sample_ids")


def test_a_match_expires_exactly_at_expires_at_and_not_a_microsecond_before():
    # given a pending match expiring exactly at as_of and one expiring a microsecond later
    due = match_at(at=AS_OF - EXPIRY)
    not_yet = match_at(at=AS_OF - EXPIRY + MICROSECOND)
    assert due.expires_at == AS_OF
    assert not_yet.expires_at == AS_OF + MICROSECOND

    # when the job runs as of that instant
    run = run_job("expire_matches", as_of=AS_OF)

    # then only the match with expires_at <= as_of expired
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary["matches_expired"] == 1
    due.refresh_from_db()
    not_yet.refresh_from_db()
    assert due.status == MatchStatus.EXPIRED
    assert not_yet.status == MatchStatus.PENDING
    assert not_yet.expired_at is None


def test_expiry_marks_the_match_expired_and_notifies_only_the_donor():
    # given a stale pending match and an accepted match whose expiry has also passed
    stale = match_at(at=AS_OF - EXPIRY - timedelta(hours=2), amount=4_200)
    accepted = match_at(at=AS_OF - EXPIRY - timedelta(hours=3), donor=funded_wallet())
    match_accept(match=accepted, at=AS_OF - EXPIRY - timedelta(hours=2))

    # when the job runs
    run = run_job("expire_matches", as_of=AS_OF)

    # then the run reports the one stale match
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary == {
        "matches_expired": 1,
        "amount_unmatched": 4_200,
        "notifications_queued": 1,
        "batches": 1,
        "sample_ids": [stale.pk],
    }
    # and the stale match is expired while the accepted one is untouched
    stale.refresh_from_db()
    accepted.refresh_from_db()
    assert stale.status == MatchStatus.EXPIRED
    assert stale.expired_at is not None
    assert accepted.status == MatchStatus.ACCEPTED
    assert accepted.expired_at is None
    # and exactly one outbox row went to the donor of the stale match
    notification = Notification.objects.get()
    assert notification.dedupe_key == f"match-expired:{stale.pk}"
    assert notification.user_id == stale.donor.user_id
    assert (notification.channel, notification.kind) == ("push", "match_expired")
    assert notification.payload == {
        "match_id": stale.pk,
        "amount": 4_200,
        "expired_at": stale.expires_at.isoformat(),
    }


def test_a_second_run_changes_nothing():
    # given matches expired by a first run
    for hours in (1, 5, 30):
        match_at(at=AS_OF - EXPIRY - timedelta(hours=hours))
    first = run_job("expire_matches", as_of=AS_OF)
    assert first.summary["matches_expired"] == 3
    before = ledger_snapshot()

    # when the job runs again
    second = run_job("expire_matches", as_of=AS_OF)

    # then it finds nothing and every domain table is identical
    assert second.status == RunStatus.SUCCEEDED
    assert counts_of(second.summary, COUNT_KEYS) == {
        "matches_expired": 0,
        "amount_unmatched": 0,
        "notifications_queued": 0,
        "sample_ids": [],
    }
    assert ledger_snapshot() == before


def test_dry_run_changes_nothing_and_reports_what_the_real_run_then_does():
    # given two stale matches and one still fresh
    match_at(at=AS_OF - EXPIRY - timedelta(minutes=1), amount=1_500)
    match_at(at=AS_OF - EXPIRY - timedelta(days=3), amount=2_000)
    match_at(at=AS_OF - EXPIRY + timedelta(minutes=1), amount=9_900)
    before = ledger_snapshot()

    # when a dry run is made
    dry = run_job("expire_matches", as_of=AS_OF, dry_run=True)

    # then nothing changed
    assert dry.status == RunStatus.SUCCEEDED
    assert dry.summary["dry_run"] is True
    assert ledger_snapshot() == before

    # and a real run then does exactly what the dry run reported
    real = run_job("expire_matches", as_of=AS_OF)
    assert counts_of(real.summary, COUNT_KEYS) == counts_of(dry.summary, COUNT_KEYS)
    assert real.summary["amount_unmatched"] == 3_500
    assert Match.objects.filter(status=MatchStatus.EXPIRED).count() == 2
