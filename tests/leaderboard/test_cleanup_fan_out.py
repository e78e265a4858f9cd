"""cleanup hands a large score archive to shard runs and does the other steps itself."""

from datetime import timedelta

import pytest

from jobs.models import RunStatus
from jobs.runner import job_run_execute
from leaderboard.models import ArchivedScore, Score
from tests.factories import UserFactory
from tests.leaderboard.factories import MONDAY, active_session, orphan_score, score_at
from tests.ledger.helpers import run_job

AS_OF = MONDAY + timedelta(hours=3)


@pytest.mark.django_db
def test_a_large_archive_fans_out_and_the_parent_adds_up_its_shards(settings, broker):
    # given 25 scores past the archive age, a stale session and an orphan, fan-out above 10
    settings.STEWARD_FANOUT_THRESHOLD = 10
    settings.STEWARD_SHARD_SIZE = 10
    user = UserFactory()
    old = [
        score_at(user=user, points=n, at=AS_OF - timedelta(days=91, minutes=n)) for n in range(25)
    ]
    recent = score_at(user=user, points=99, at=AS_OF - timedelta(days=1))
    active_session(user=user, started_at=AS_OF - timedelta(hours=1))
    orphan_score(user=user, points=1, at=AS_OF - timedelta(days=2))

    # when cleanup runs, it does the small steps and hands the archive to 3 shards
    parent = run_job("cleanup", as_of=AS_OF)
    assert parent.status == RunStatus.WAITING
    assert parent.summary["sessions_deleted"] == 1
    assert parent.summary["orphan_scores_deleted"] == 1
    assert parent.summary["shards"] == 3
    assert ArchivedScore.objects.count() == 0

    # when the shards run, the parent ends with the whole archive counted once
    for shard in parent.shards.order_by("pk"):
        assert job_run_execute(run_id=shard.pk).status == RunStatus.SUCCEEDED
    parent.refresh_from_db()
    assert parent.status == RunStatus.SUCCEEDED
    assert parent.summary["scores_archived"] == 25
    assert parent.summary["sessions_deleted"] == 1
    assert set(ArchivedScore.objects.values_list("pk", flat=True)) == {s.pk for s in old}
    assert list(Score.objects.values_list("pk", flat=True)) == [recent.pk]
