"""Priority lanes: an urgent run goes to its queue's urgent lane, and a targeted run always
does; the lane's pause and limits are its queue's."""

import pytest
from django.utils import timezone

from jobs.actors import actor_for
from jobs.lanes import URGENT_PRIORITY, base_queue, lane_of, lane_queue
from jobs.models import JobRun, RunStatus
from jobs.queues import queue_names, queue_stats
from jobs.services import job_run_request
from ledger.models import Escrow
from tests.factories import HOLD, donation_at

pytestmark = pytest.mark.django_db


def waiting():
    return {stats.name: stats.waiting for stats in queue_stats() if stats.waiting}


@pytest.fixture
def sent(django_capture_on_commit_callbacks, broker):
    """Request a run and send its message, as the commit of a request does."""

    def request(**fields) -> JobRun:
        with django_capture_on_commit_callbacks(execute=True):
            return job_run_request(trigger="api", **fields)

    return request


def test_a_targeted_release_is_urgent_and_waits_in_money_urgent(sent):
    # given an escrow due for release
    escrow = Escrow.objects.get(donation=donation_at(at=timezone.now() - HOLD))

    # when a release of just that escrow and a full release are requested
    targeted = sent(job="release_escrows", params={"escrow_ids": [escrow.pk]})
    sweep = sent(job="release_escrows")

    # then the targeted one is urgent, in the money queue's urgent lane; the sweep is not
    assert targeted.urgent
    assert not sweep.urgent
    assert waiting() == {"money-urgent": 1, "money": 1}


def test_an_urgent_run_waits_in_its_queues_urgent_lane(sent):
    run = sent(job="expire_matches", urgent=True)
    assert run.urgent
    assert waiting() == {"default-urgent": 1}


def test_a_retry_of_an_urgent_run_is_urgent(sent):
    failed = sent(job="reconcile_ledger", urgent=True)
    JobRun.objects.filter(pk=failed.pk).update(status=RunStatus.FAILED)
    retry = sent(job="reconcile_ledger", retry_of=failed)
    assert retry.urgent
    assert waiting() == {"default-urgent": 2}


def test_every_queue_has_an_urgent_lane_consumed_first():
    names = queue_names()
    for queue in ("default", "money", "notifications", "engine"):
        assert lane_queue(queue, urgent=True) in names
    assert actor_for("release_escrows", urgent=True).priority == URGENT_PRIORITY
    assert actor_for("release_escrows").priority == 0
    assert actor_for("release_escrows", urgent=True).queue_name == "money-urgent"


@pytest.mark.parametrize(
    ("name", "queue", "lane"),
    [
        ("money", "money", "normal"),
        ("money-urgent", "money", "urgent"),
        ("money-urgent.DQ", "money", "urgent"),
        ("money.DQ", "money", "normal"),
        ("default-urgent.XQ", "default", "urgent"),
    ],
)
def test_a_lane_and_its_delay_queue_obey_their_queue(name, queue, lane):
    assert base_queue(name) == queue
    if not name.endswith(".XQ"):
        assert lane_of(name) == lane
