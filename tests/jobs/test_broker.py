"""The prompt-wake consumer's backoff, against the real Redis (a database of its own)."""

from urllib.parse import urlsplit

import pytest
from django.conf import settings
from dramatiq import Message

from jobs.broker import PromptRedisBroker

# The suite's Redis server, database 13: this module flushes it and touches no other.
REDIS_URL = urlsplit(settings.REDIS_URL)._replace(path="/13").geturl()
QUEUE = "backoff"


@pytest.fixture
def prompt_broker():
    """A bare PromptRedisBroker (no middleware) on an empty database 13."""
    redis_broker = PromptRedisBroker(url=REDIS_URL, middleware=[])
    redis_broker.client.flushdb()
    yield redis_broker
    redis_broker.client.flushdb()
    redis_broker.close()


def send(redis_broker, count):
    for number in range(count):
        redis_broker.enqueue(
            Message(queue_name=QUEUE, actor_name="noop", args=(number,), kwargs={}, options={})
        )


def test_handing_out_a_message_resets_the_backoff_of_busy_turns(prompt_broker):
    # given a backlog, and a consumer busy with as many messages as it may prefetch
    send(prompt_broker, 3)
    consumer = prompt_broker.consume(QUEUE, prefetch=1, timeout=100)
    try:
        first = next(consumer)
        assert first is not None

        # when it finds itself busy a few times, each turn backing off a little longer
        for _ in range(3):
            assert next(consumer) is None
        assert consumer.misses == 3

        # then the next message it hands out ends that run of misses, as in the stock consumer
        consumer.ack(first)
        second = next(consumer)
        assert second is not None
        assert consumer.misses == 0

        # and so does every later one
        assert next(consumer) is None
        consumer.ack(second)
        third = next(consumer)
        assert third is not None
        assert consumer.misses == 0
        consumer.ack(third)
    finally:
        consumer.close()
