"""The run-time controls: each change is a row, an audit entry and a snapshot published to the
workers; bad input changes nothing; the workers' middleware and consumer obey the snapshot."""

from datetime import timedelta

import pytest
from django.utils import timezone
from dramatiq import Message
from dramatiq.broker import MessageProxy
from dramatiq.middleware import SkipMessage

from jobs.actors import actor_for
from jobs.conf import conf
from jobs.control_state import (
    Controls,
    controls_read,
    controls_view,
    controls_write,
    slot_returned,
    slots_held,
)
from jobs.controls import (
    fleet_drain_end,
    fleet_drain_start,
    queue_concurrency_set,
    queue_pause,
    queue_resume,
    rate_limit_set,
)
from jobs.exceptions import InvalidInput, UnknownQueue
from jobs.fleet import (
    UnknownRateLimit,
    controls_snapshot,
    queue_controls,
    rate_limit_overviews,
)
from jobs.heartbeats import Heartbeat
from jobs.middleware import QueueControls, shutdown_requested
from jobs.models import ControlAction, FleetState, QueueState, RateLimitSetting, WorkerHeartbeat
from jobs.queues import queue_stats
from jobs.rescue import runs_rescue
from jobs.services import job_run_request

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_limiter_counts(broker):
    """The fleet-wide limiters' counts live in Redis: each test starts without any."""
    for pattern in ("steward:queue-concurrency:*", "steward:*@*"):
        for key in broker.client.scan_iter(pattern):
            broker.client.delete(key)


@pytest.fixture
def publish(django_capture_on_commit_callbacks):
    """Run the control services' publish, which waits for the commit, as a commit would."""

    def change(service, **arguments):
        with django_capture_on_commit_callbacks(execute=True):
            return service(**arguments)

    return change


def audit_of(action):
    return list(ControlAction.objects.filter(action=action).order_by("id"))


def test_pausing_a_queue_records_it_audits_it_and_publishes_it(publish):
    # when an operator pauses the default queue
    publish(queue_pause, queue="default", by="ops-alice", reason="deploy")

    # then the queue is paused in the database, audited with before and after, and published
    assert QueueState.objects.get(queue="default").paused
    (entry,) = audit_of(ControlAction.Action.QUEUE_PAUSED)
    assert (entry.target_type, entry.target, entry.actor, entry.reason) == (
        "queue",
        "default",
        "ops-alice",
        "deploy",
    )
    assert (entry.before, entry.after) == ({"paused": False}, {"paused": True})
    published = controls_read()
    assert published.paused == {"default"}
    assert published.version == entry.pk
    assert not published.accepting("default")
    assert published.accepting("money")

    # when it is paused again, nothing more happens; when resumed, that is audited too
    publish(queue_pause, queue="default", by="ops-bob")
    assert len(audit_of(ControlAction.Action.QUEUE_PAUSED)) == 1
    publish(queue_resume, queue="default", by="ops-bob", reason="deployed")
    (resumed,) = audit_of(ControlAction.Action.QUEUE_RESUMED)
    assert (resumed.before, resumed.after) == ({"paused": True}, {"paused": False})
    assert controls_read().paused == set()
    assert controls_read().version == resumed.pk


def test_concurrency_set_at_run_time_and_back_to_the_environment(publish, settings):
    # given an environment limit of 3 on the money queue
    settings.STEWARD_QUEUE_CONCURRENCY = {"money": 3}
    assert queue_controls()["money"].concurrency_source == "environment"

    # when an operator sets 2, then goes back to the environment's value
    publish(queue_concurrency_set, queue="money", concurrency=2, by="ops", reason="slow bank")
    assert controls_read().concurrency == {"money": 2}
    money = queue_controls()["money"]
    assert (money.concurrency, money.concurrency_source) == (2, "run time")
    publish(queue_concurrency_set, queue="money", concurrency=None, by="ops")

    # then each change is audited with what was in force before and after
    first, second = audit_of(ControlAction.Action.CONCURRENCY_CHANGED)
    assert (first.before, first.after) == ({"concurrency": 3}, {"concurrency": 2})
    assert (second.before, second.after) == ({"concurrency": 2}, {"concurrency": 3})
    assert controls_read().concurrency == {"money": 3}
    assert queue_controls()["money"].concurrency_source == "environment"


def test_a_rate_limit_set_and_reset_is_audited_and_published(publish, settings):
    # given the environment's limit on the email channel
    settings.STEWARD_QUEUE_RATE_LIMITS = "channel-email=600/60"

    # when an operator limits the notifications queue and changes the email channel's, then
    # resets the channel's
    assert publish(rate_limit_set, name="notifications", limit=5, window_seconds=10, by="ops") == (
        5,
        10,
    )
    publish(rate_limit_set, name="channel-email", limit=100, window_seconds=60, by="ops")
    assert controls_read().rate_limits == {"notifications": (5, 10), "channel-email": (100, 60)}
    publish(rate_limit_set, name="channel-email", limit=None, window_seconds=None, by="ops")

    # then the published limits are the run-time ones over the environment's, each change
    # audited
    assert controls_read().rate_limits == {"notifications": (5, 10), "channel-email": (600, 60)}
    entries = audit_of(ControlAction.Action.RATE_LIMIT_CHANGED)
    assert [(entry.target, entry.before, entry.after) for entry in entries] == [
        ("notifications", {"rate_limit": None}, {"rate_limit": "5/10s"}),
        ("channel-email", {"rate_limit": "600/60s"}, {"rate_limit": "100/60s"}),
        ("channel-email", {"rate_limit": "100/60s"}, {"rate_limit": "600/60s"}),
    ]
    sources = {overview.name: overview.source for overview in rate_limit_overviews()}
    assert sources["notifications"] == "run time"
    assert sources["channel-email"] == "environment"


def test_a_fleet_drain_is_audited_and_published(publish):
    publish(fleet_drain_start, by="ops", reason="deploy")
    assert controls_read().draining
    assert not controls_read().accepting("money")
    assert FleetState.objects.get().draining_since is not None

    publish(fleet_drain_end, by="ops")
    assert not controls_read().draining
    assert FleetState.objects.get().draining_since is None
    started, ended = ControlAction.objects.filter(target_type="fleet").order_by("id")
    assert (started.action, started.before, started.after) == (
        "drain_started",
        {"draining": False},
        {"draining": True},
    )
    assert (ended.action, ended.after) == ("drain_ended", {"draining": False})


@pytest.mark.parametrize(
    ("service", "arguments", "field"),
    [
        pytest.param(queue_concurrency_set, {"queue": "money", "concurrency": 0}, "concurrency"),
        pytest.param(
            queue_concurrency_set, {"queue": "money", "concurrency": 10_001}, "concurrency"
        ),
        pytest.param(queue_concurrency_set, {"queue": "money", "concurrency": True}, "concurrency"),
        pytest.param(queue_concurrency_set, {"queue": "money", "concurrency": "2"}, "concurrency"),
        pytest.param(
            queue_concurrency_set,
            {"queue": "money", "concurrency": 2, "reason": "x" * 501},
            "reason",
        ),
        pytest.param(queue_pause, {"queue": "money", "reason": "x" * 501}, "reason"),
        pytest.param(fleet_drain_start, {"reason": "x" * 501}, "reason"),
        pytest.param(
            rate_limit_set, {"name": "money", "limit": 5, "window_seconds": None}, "limit"
        ),
        pytest.param(rate_limit_set, {"name": "money", "limit": 0, "window_seconds": 1}, "limit"),
        pytest.param(
            rate_limit_set,
            {"name": "money", "limit": 5, "window_seconds": 86_401},
            "window_seconds",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_changes_nothing(
    publish, service, arguments, field
):
    # when a control is asked for something it cannot do
    with pytest.raises(InvalidInput) as refused:
        publish(service, by="ops", **arguments)

    # then the refusal names the field, and nothing was recorded, audited or published
    assert field in refused.value.fields
    assert not QueueState.objects.exists()
    assert not RateLimitSetting.objects.exists()
    assert not FleetState.objects.filter(draining=True).exists()
    assert not ControlAction.objects.exists()
    assert controls_read() is None


@pytest.mark.parametrize(
    ("service", "arguments", "error"),
    [
        # a lane is controlled through its queue
        pytest.param(queue_pause, {"queue": "money-urgent"}, UnknownQueue),
        pytest.param(queue_concurrency_set, {"queue": "nope", "concurrency": 1}, UnknownQueue),
        pytest.param(
            rate_limit_set, {"name": "nope", "limit": 1, "window_seconds": 1}, UnknownRateLimit
        ),
    ],
)
def test_unknown_targets_are_refused_and_change_nothing(publish, service, arguments, error):
    with pytest.raises(error):
        publish(service, by="ops", **arguments)
    assert not QueueState.objects.exists()
    assert not ControlAction.objects.exists()
    assert controls_read() is None


def test_an_older_snapshot_never_overwrites_a_newer_one(publish):
    # given a pause published
    publish(queue_pause, queue="default", by="ops")
    newer = controls_read()

    # when a worker's periodic publish, read before the pause, arrives late
    assert controls_write(Controls(version=newer.version - 1, source=newer.source)) is False

    # then the pause stays published; a copy of the same version may be written again
    assert controls_read().paused == {"default"}
    assert controls_write(controls_snapshot())
    assert controls_read() == newer


def test_a_copy_left_by_another_database_is_replaced_whatever_its_version(publish):
    # given a pause published from another database sharing this Redis (a reset one), with a
    # version this database has not reached
    controls_write(Controls(paused=frozenset({"money"}), version=10**6, source="elsewhere"))

    # when this database's controls are published
    assert controls_write(controls_snapshot())

    # then the workers obey this database: nothing is paused
    assert controls_read().paused == frozenset()


# --- the worker side -------------------------------------------------------------------------


def queue_controls_middleware(broker) -> QueueControls:
    return next(m for m in broker.middleware if isinstance(m, QueueControls))


def run_message(job="expire_matches", **options):
    run = job_run_request(enqueue=False, job=job, trigger="cli")
    message = actor_for(job).message_with_options(args=(run.pk,), **options)
    return MessageProxy(message)


def waiting_messages(broker, queue_name):
    stored = broker.client.hvals(f"{broker.namespace}:{queue_name}.msgs")
    return [Message.decode(payload) for payload in stored]


def stats_of(name):
    return next(stats for stats in queue_stats() if stats.name == name)


def test_a_message_of_a_paused_queue_is_put_back_with_its_id_and_retries(publish, broker):
    # given a paused queue and a message of it that already used two retries
    publish(queue_pause, queue="default", by="ops")
    message = run_message(retries=2)

    # when a worker is about to start it
    with pytest.raises(SkipMessage):
        queue_controls_middleware(broker).before_process_message(broker, message)

    # then it is back in Redis, delayed a moment, with the same id and retries
    (again,) = waiting_messages(broker, "default.DQ")
    assert again.message_id == message.message_id
    assert again.options["retries"] == 2
    assert again.queue_name == "default.DQ"
    # and a message of another queue starts as usual
    queue_controls_middleware(broker).before_process_message(broker, run_message("release_escrows"))


def test_a_stopping_worker_puts_a_message_back_at_once(broker):
    # given a worker that is shutting down
    message = run_message(retries=1)
    shutdown_requested.set()
    try:
        # when an idle thread is handed a prefetched message
        with pytest.raises(SkipMessage):
            queue_controls_middleware(broker).before_process_message(broker, message)
    finally:
        shutdown_requested.clear()

    # then it goes straight back to its queue for another worker, id and retries kept
    assert stats_of("default").waiting == 1
    (again,) = waiting_messages(broker, "default")
    assert (again.message_id, again.options["retries"]) == (message.message_id, 1)


def test_a_run_beyond_its_queue_concurrency_is_put_back_until_a_slot_frees(publish, broker):
    # given a concurrency of 1 on the default queue, and one run holding the slot
    publish(queue_concurrency_set, queue="default", concurrency=1, by="ops")
    middleware = queue_controls_middleware(broker)
    first = run_message()
    middleware.before_process_message(broker, first)

    # when a second run of the queue (either lane) is about to start, it is put back
    second = run_message()
    with pytest.raises(SkipMessage):
        middleware.before_process_message(broker, second)
    assert [m.message_id for m in waiting_messages(broker, "default.DQ")] == [second.message_id]

    # when the first run ends, its slot is free for the next one
    middleware.after_process_message(broker, first)
    third = run_message()
    middleware.before_process_message(broker, third)
    middleware.after_process_message(broker, third)


@pytest.mark.django_db
def test_the_slots_a_dead_worker_held_are_given_back_by_the_rescue(publish, broker):
    # given a concurrency of 1 on the default queue, whose slot this process takes
    publish(queue_concurrency_set, queue="default", concurrency=1, by="ops")
    middleware = queue_controls_middleware(broker)
    middleware.before_process_message(broker, run_message())
    assert slots_held() == {"default": 1}
    # and its heartbeat says so, then it dies without giving the slot back
    Heartbeat(queues=["default"], threads=1).beat()
    heartbeat = WorkerHeartbeat.objects.get()
    assert heartbeat.slots == {"default": 1}
    with pytest.raises(SkipMessage):
        middleware.before_process_message(broker, run_message())

    # when the rescue runs once its heartbeat is stale
    later = timezone.now() + timedelta(seconds=conf.WORKER_LOST_AFTER + 1)
    counts = runs_rescue(now=later)

    # then the slot is back, once: another run may start, and a second rescue returns nothing
    assert counts["slots_returned"] == 1
    third = run_message()
    middleware.before_process_message(broker, third)
    assert "slots_returned" not in runs_rescue(now=later)
    heartbeat.refresh_from_db()
    assert heartbeat.slots == {}
    middleware.after_process_message(broker, third)
    # This process's own count still has the "dead" slot; it lives on, so it forgets it here.
    slot_returned("default")
    assert slots_held() == {}


def test_a_queue_rate_limit_puts_back_the_runs_beyond_it(publish, broker):
    # given at most 2 runs a minute on the default queue
    publish(rate_limit_set, name="default", limit=2, window_seconds=60, by="ops")
    middleware = queue_controls_middleware(broker)

    # when three runs are about to start, the third goes back
    for _ in range(2):
        message = run_message()
        middleware.before_process_message(broker, message)
        middleware.after_process_message(broker, message)
    third = run_message()
    with pytest.raises(SkipMessage):
        middleware.before_process_message(broker, third)
    assert [m.message_id for m in waiting_messages(broker, "default.DQ")] == [third.message_id]


@pytest.mark.parametrize("urgent", [False, True], ids=["normal lane", "urgent lane"])
def test_the_consumer_of_a_paused_queue_fetches_nothing_until_it_is_resumed(
    publish, broker, urgent
):
    # given a waiting message of a paused queue, in either of its lanes
    publish(queue_pause, queue="default", by="ops")
    actor = actor_for("expire_matches", urgent=urgent)
    actor.send(1)
    consumer = broker.consume(actor.queue_name, prefetch=1, timeout=100)
    try:
        # when its consumer looks, it fetches nothing: the message stays waiting in Redis
        assert next(consumer) is None
        assert stats_of(actor.queue_name).waiting == 1

        # when the queue is resumed, the message is handed out
        publish(queue_resume, queue="default", by="ops")
        controls_view.forget()
        message = next(consumer) or next(consumer)
        assert message.args == (1,)
        consumer.ack(message)
    finally:
        consumer.close()
