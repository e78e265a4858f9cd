"""cleanup: stale sessions at the 30-minute boundary, orphans, the 90-day archive, and pruning
sent notifications by their retention."""

from datetime import timedelta

import pytest

from leaderboard.models import ArchivedScore, GameSession, Score
from ledger.models import Notification
from tests.factories import UserFactory
from tests.leaderboard.factories import (
    MONDAY,
    active_session,
    orphan_score,
    score_at,
    score_rows,
)
from tests.ledger.helpers import run_job

AS_OF = MONDAY + timedelta(hours=3)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
COUNTS = (
    "sessions_deleted",
    "orphan_scores_deleted",
    "scores_archived",
    "notifications_deleted",
)


def _notification(*, status: str, sent_at=None) -> Notification:
    return Notification.objects.create(
        user=UserFactory(),
        channel="push",
        kind="test",
        dedupe_key=f"test:{Notification.objects.count()}:{status}",
        status=status,
        sent_at=sent_at,
    )


@pytest.mark.django_db
def test_sessions_active_longer_than_30_minutes_are_deleted_and_their_scores_with_them():
    # given active sessions started 29 minutes, exactly 30 minutes, 30 minutes and a
    # microsecond, and 31 minutes before the run, and a session completed long ago
    user = UserFactory()
    ages = {
        "29m": 29 * MINUTE,
        "30m": 30 * MINUTE,
        "30m1us": 30 * MINUTE + timedelta(microseconds=1),
        "31m": 31 * MINUTE,
    }
    sessions = {
        name: active_session(user=user, started_at=AS_OF - age) for name, age in ages.items()
    }
    old_completed = score_at(user=user, points=5, at=AS_OF - DAY)
    # and a score recorded against the stale session
    stale_score = Score.objects.create(
        player=user, game="snake", points=1, achieved_at=AS_OF, session=sessions["31m"]
    )

    # when the cleanup runs
    run = run_job("cleanup", as_of=AS_OF)

    # then only the sessions active longer than 30 minutes are gone, and the stale session's
    # score went with it as an orphan
    remaining = set(GameSession.objects.values_list("pk", flat=True))
    assert remaining == {sessions["29m"].pk, sessions["30m"].pk, old_completed.session_id}
    assert not Score.objects.filter(pk=stale_score.pk).exists()
    assert run.summary["sessions_deleted"] == 2
    assert run.summary["orphan_scores_deleted"] == 1


@pytest.mark.django_db
def test_orphaned_scores_are_deleted_and_scores_with_a_session_are_kept():
    # given two orphans and a score whose session exists
    user = UserFactory()
    orphans = [orphan_score(user=user, points=n, at=AS_OF - DAY) for n in (1, 2)]
    kept = score_at(user=user, points=3, at=AS_OF - DAY)

    # when the cleanup runs
    run = run_job("cleanup", as_of=AS_OF)

    # then only the orphans are gone
    assert set(Score.objects.values_list("pk", flat=True)) == {kept.pk}
    assert not Score.objects.filter(pk__in=[o.pk for o in orphans]).exists()
    assert run.summary["orphan_scores_deleted"] == 2


@pytest.mark.django_db
def test_scores_older_than_90_days_move_to_the_archive_without_loss_or_duplicates(settings):
    # given 7 scores older than 90 days, one exactly 90 days old and a recent one, archived
    # in batches of 3
    settings.STEWARD_BATCH_SIZE = 3
    user = UserFactory()
    old = [
        score_at(user=user, points=n, at=AS_OF - 90 * DAY - n * MINUTE, game="pong")
        for n in range(1, 8)
    ]
    boundary = score_at(user=user, points=90, at=AS_OF - 90 * DAY)
    recent = score_at(user=user, points=1, at=AS_OF - DAY)
    before = score_rows()

    # when the cleanup runs
    run = run_job("cleanup", as_of=AS_OF)

    # then the old scores are in the archive only, with their ids and fields, and every
    # score is in exactly one of the two tables
    after = score_rows()
    assert set(after["archived"]) == {score.pk for score in old}
    assert set(after["live"]) == {boundary.pk, recent.pk}
    assert after["live"].keys().isdisjoint(after["archived"])
    assert {**after["live"], **after["archived"]} == before["live"]
    assert set(ArchivedScore.objects.values_list("session_id", flat=True)) == {
        score.session_id for score in old
    }
    assert run.summary["scores_archived"] == 7

    # and a second run moves nothing
    assert run_job("cleanup", as_of=AS_OF).summary["scores_archived"] == 0
    assert score_rows() == after


@pytest.mark.django_db
def test_archiving_can_be_switched_off(settings):
    # given an old score, with archiving off
    settings.LEADERBOARD_ARCHIVING = False
    old = score_at(user=UserFactory(), points=1, at=AS_OF - 200 * DAY)

    # when the cleanup runs
    run = run_job("cleanup", as_of=AS_OF)

    # then the score stays where it is
    assert Score.objects.filter(pk=old.pk).exists()
    assert not ArchivedScore.objects.exists()
    assert (run.summary["scores_archived"], run.summary["archiving"]) == (0, False)


@pytest.mark.django_db
def test_sent_notifications_are_pruned_by_their_retention():
    # given notifications on both sides of the 30-day retention
    sent_old = _notification(status="sent", sent_at=AS_OF - 31 * DAY)
    notifications_kept = {
        _notification(status="sent", sent_at=AS_OF - 29 * DAY).pk,
        _notification(status="failed").pk,
        _notification(status="pending").pk,
    }

    # when the cleanup runs
    run = run_job("cleanup", as_of=AS_OF)

    # then only the old sent notification is gone
    assert set(Notification.objects.values_list("pk", flat=True)) == notifications_kept
    assert not Notification.objects.filter(pk=sent_old.pk).exists()
    assert run.summary["notifications_deleted"] == 1


@pytest.mark.django_db
def test_dry_run_changes_nothing_and_predicts_the_real_run():
    # given work of every kind, including a stale session whose old score would be archived
    # if the session were not deleted first
    user = UserFactory()
    stale = active_session(user=user, started_at=AS_OF - 120 * DAY)
    Score.objects.create(
        player=user, game="snake", points=1, achieved_at=AS_OF - 100 * DAY, session=stale
    )
    active_session(user=user, started_at=AS_OF - 40 * MINUTE)
    orphan_score(user=user, points=2, at=AS_OF)
    for n in range(3):
        score_at(user=user, points=n, at=AS_OF - 95 * DAY)
    _notification(status="sent", sent_at=AS_OF - 40 * DAY)
    before = (
        list(GameSession.objects.order_by("pk").values()),
        list(Score.objects.order_by("pk").values()),
        Notification.objects.count(),
    )

    # when a dry run goes first
    dry = run_job("cleanup", as_of=AS_OF, dry_run=True)

    # then nothing changed (apart from the dry run's own record)
    assert (
        list(GameSession.objects.order_by("pk").values()),
        list(Score.objects.order_by("pk").values()),
        Notification.objects.count(),
    ) == before
    assert not ArchivedScore.objects.exists()

    # and the real run makes exactly the predicted counts
    real = run_job("cleanup", as_of=AS_OF)
    assert (
        {k: dry.summary[k] for k in COUNTS}
        == {k: real.summary[k] for k in COUNTS}
        == {
            "sessions_deleted": 2,
            "orphan_scores_deleted": 2,
            "scores_archived": 3,
            "notifications_deleted": 1,
        }
    )
