"""Queue statistics and dead letters against the real Redis broker."""

import uuid

import pytest
from django.test import override_settings

from jobs.actors import actor_for
from jobs.dead_letters import queue_dead_letters, queue_requeue_dead
from jobs.exceptions import InvalidInput
from jobs.models import ControlAction, JobRun, RunStatus, Trigger
from jobs.queues import UnknownQueue, queue_clear, queue_stats
from jobs.ratelimits import rate_limiter
from jobs.services import job_run_request


def stats_of(name):
    return next(stats for stats in queue_stats() if stats.name == name)


def dead_letter_one(broker, queue):
    """Fetch one message the way a worker does and fail it, as Retries does at the end."""
    consumer = broker.consume(queue, prefetch=1, timeout=1000)
    try:
        message = next(consumer)
        consumer.nack(message)
    finally:
        consumer.close()
    return message


@pytest.mark.django_db
def test_queue_stats_reflect_waiting_delayed_in_flight_and_dead_messages(broker):
    # given messages put on the default queue in each state
    actor = actor_for("expire_matches")
    for run_id in (1, 2, 3, 4):
        actor.send(run_id)
    actor.send_with_options(args=(5,), delay=60_000)
    dead_letter_one(broker, "default")
    consumer = broker.consume("default", prefetch=1, timeout=1000)
    in_flight = next(consumer)

    # then the statistics count each of them
    stats = stats_of("default")
    assert (stats.waiting, stats.delayed, stats.in_flight, stats.dead_lettered) == (2, 1, 1, 1)
    assert {"default", "money", "schedule"} <= {stats.name for stats in queue_stats()}
    consumer.ack(in_flight)
    consumer.close()


@pytest.mark.django_db
def test_requeueing_a_dead_run_message_of_an_unfinished_run_sends_it_again(broker):
    # given a queued run whose message was dead-lettered
    run = job_run_request(enqueue=False, job="expire_matches", trigger=Trigger.CLI)
    actor_for("expire_matches").send(run.pk)
    dead = dead_letter_one(broker, "default")
    total, letters = queue_dead_letters(queue="default")
    assert (total, [letter.message_id for letter in letters]) == (1, [dead.message_id])
    assert letters[0].run == run

    # when an operator requeues the dead letters
    counts = queue_requeue_dead(queue="default", requested_by="ops")

    # then the message waits on its queue again and the dead-letter queue is empty
    assert counts == {"requeued": 1, "runs_retried": 0}
    stats = stats_of("default")
    assert (stats.waiting, stats.dead_lettered) == (1, 0)


@pytest.mark.django_db
def test_requeueing_the_dead_message_of_a_failed_run_creates_a_linked_retry(broker):
    # given a failed run whose message ended in the dead-letter queue
    run = job_run_request(enqueue=False, job="expire_matches", trigger=Trigger.CLI)
    JobRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, error="boom")
    actor_for("expire_matches").send(run.pk)
    dead_letter_one(broker, "default")

    # when it is requeued
    counts = queue_requeue_dead(queue="default", requested_by="ops")

    # then a new retry run links to the failed one, which keeps its record
    assert counts == {"requeued": 1, "runs_retried": 1}
    retry = JobRun.objects.get(retry_of=run)
    assert retry.trigger == Trigger.RETRY
    assert retry.requested_by == "ops"
    assert JobRun.objects.get(pk=run.pk).status == RunStatus.FAILED


@pytest.mark.django_db
def test_clearing_a_queue_drops_its_messages_and_cancels_their_runs(broker):
    # given a queued run's message waiting and another message delayed
    run = job_run_request(enqueue=False, job="expire_matches", trigger=Trigger.CLI)
    actor = actor_for("expire_matches")
    actor.send(run.pk)
    actor.send_with_options(args=(run.pk + 1000,), delay=60_000)

    # when an operator clears the queue, confirming its name
    counts = queue_clear(queue="default", requested_by="ops", confirm="default", reason="bad")

    # then both messages are gone, the run is cancelled, and the clear is audited
    assert counts == {"messages": 2, "runs_cancelled": 1}
    stats = stats_of("default")
    assert (stats.waiting, stats.delayed) == (0, 0)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert "cleared by ops: bad" in run.status_reason
    assert ControlAction.objects.get(action="queue_cleared").target == "default"


@pytest.mark.django_db
def test_clearing_a_queue_needs_its_name_repeated(broker):
    actor_for("expire_matches").send(1)
    with pytest.raises(InvalidInput, match="confirm"):
        queue_clear(queue="default", requested_by="ops", confirm="money")
    assert stats_of("default").waiting == 1
    assert not ControlAction.objects.exists()


@pytest.mark.django_db
def test_unknown_queues_are_refused(broker):
    with pytest.raises(UnknownQueue, match="known queues"):
        queue_clear(queue="nope", requested_by="ops", confirm="nope")
    with pytest.raises(UnknownQueue):
        queue_requeue_dead(queue="nope", requested_by="ops")


def test_a_queue_rate_limit_is_shared_through_redis():
    # given a limit of 3 per minute on a fresh name
    name = f"test-{uuid.uuid4().hex}"
    with override_settings(STEWARD_QUEUE_RATE_LIMITS=f"{name}=3/60"):
        first, second = rate_limiter(name), rate_limiter(name)
    acquired = []
    # when two limiters (two workers) draw on it
    for limiter in (first, second, first, second):
        with limiter.acquire(raise_on_failure=False) as ok:
            acquired.append(ok)
    # then only three calls go through
    assert acquired == [True, True, True, False]


def test_unlimited_names_have_no_limiter():
    with override_settings(STEWARD_QUEUE_RATE_LIMITS=""):
        assert rate_limiter("anything") is None


@pytest.mark.django_db(transaction=True)
def test_clearing_a_job_queue_clears_its_urgent_lane_too_in_one_audit_entry(broker):
    # given a normal and an urgent run waiting on the default queue's two lanes
    normal = job_run_request(job="expire_matches", trigger=Trigger.CLI)
    urgent = job_run_request(job="expire_matches", trigger=Trigger.CLI, urgent=True)
    assert (stats_of("default").waiting, stats_of("default-urgent").waiting) == (1, 1)

    # when an operator clears the queue by its name
    counts = queue_clear(queue="default", requested_by="ops", confirm="default")

    # then both lanes are empty, both runs cancelled, and one entry records it
    assert counts == {"messages": 2, "runs_cancelled": 2}
    assert (stats_of("default").waiting, stats_of("default-urgent").waiting) == (0, 0)
    assert {run.status for run in JobRun.objects.filter(pk__in=[normal.pk, urgent.pk])} == {
        RunStatus.CANCELLED
    }
    entry = ControlAction.objects.get()
    assert entry.before["lanes"] == ["default", "default-urgent"]


@pytest.mark.django_db(transaction=True)
def test_clearing_an_urgent_lane_leaves_the_normal_one(broker):
    job_run_request(job="expire_matches", trigger=Trigger.CLI)
    job_run_request(job="expire_matches", trigger=Trigger.CLI, urgent=True)
    counts = queue_clear(queue="default-urgent", requested_by="ops", confirm="default-urgent")
    assert counts == {"messages": 1, "runs_cancelled": 1}
    assert (stats_of("default").waiting, stats_of("default-urgent").waiting) == (1, 0)
