"""The prompt-wake Redis broker, against the real Redis."""

import pytest

from jobs.actors import actor_for
from jobs.broker import WAKE_TOKENS_KEPT, PromptRedisBroker, wake_key


@pytest.mark.django_db
def test_the_configured_broker_wakes_idle_consumers(broker):
    assert isinstance(broker, PromptRedisBroker)


@pytest.mark.django_db
def test_enqueue_leaves_a_wake_token_and_a_consumer_takes_the_message(broker):
    # given an empty queue and one message sent to it
    broker.client.delete(wake_key(broker, "default"))
    sent = actor_for("expire_matches").send(7)

    # then a wake token waits for an idle consumer, which fetches the message
    assert broker.client.llen(wake_key(broker, "default")) == 1
    consumer = broker.consume("default", prefetch=1, timeout=200)
    try:
        received = next(consumer)
        assert received.message_id == sent.message_id
        consumer.ack(received)
    finally:
        consumer.close()


@pytest.mark.django_db
def test_an_idle_consumer_waits_on_the_wake_list_and_consumes_one_token(broker):
    # given an empty queue with one stale wake token
    key = wake_key(broker, "default")
    broker.client.delete(key)
    broker.client.rpush(key, 1)
    consumer = broker.consume("default", prefetch=1, timeout=200)
    try:
        # when the consumer finds nothing to fetch
        assert next(consumer) is None
    finally:
        consumer.close()
    # then it took the token instead of sleeping, and the next idle wait times out empty
    assert broker.client.llen(key) == 0


@pytest.mark.django_db
def test_wake_tokens_stay_bounded_when_nobody_listens(broker):
    broker.client.delete(wake_key(broker, "default"))
    actor = actor_for("expire_matches")
    for run_id in range(WAKE_TOKENS_KEPT + 40):
        actor.send(run_id)
    assert broker.client.llen(wake_key(broker, "default")) == WAKE_TOKENS_KEPT


@pytest.mark.django_db
def test_many_messages_go_in_one_round_trip_each_with_its_wake_token(broker):
    # given messages for two queues, sent together as the scheduler's tick sends them
    for queue in ("default", "money"):
        broker.declare_queue(queue)
        broker.client.delete(wake_key(broker, queue))
    messages = [actor_for("expire_matches").message(run_id) for run_id in (1, 2, 3)]
    messages.append(actor_for("release_escrows").message(4))
    broker.enqueue_many(messages)

    # then each queue has its messages and a wake token for each, and consumers get them all
    assert broker.client.llen(wake_key(broker, "default")) == 3
    assert broker.client.llen(wake_key(broker, "money")) == 1
    received = {}
    for queue, count in (("default", 3), ("money", 1)):
        consumer = broker.consume(queue, prefetch=count, timeout=200)
        try:
            for _ in range(count):
                message = next(consumer)
                received[message.message_id] = message.args
                consumer.ack(message)
        finally:
            consumer.close()
    assert received == {message.message_id: message.args for message in messages}
