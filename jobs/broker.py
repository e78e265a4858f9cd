"""Dramatiq's Redis broker with a prompt wake-up for idle workers."""

from __future__ import annotations

import time
from collections import Counter
from uuid import uuid4

import redis
from dramatiq import Message
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import current_millis
from dramatiq.errors import ConnectionClosed

from jobs.control_state import concurrency_key, controls_view
from jobs.lanes import base_queue
from jobs.middleware import shutdown_requested

# Tokens kept per queue: enough to wake every idle worker process, bounded if none listens.
WAKE_TOKENS_KEPT = 64
# How often the consumer of a paused queue looks at the controls again.
PAUSED_POLL_SECONDS = 0.5


def wake_key(broker: RedisBroker, queue_name: str) -> str:
    return f"{broker.namespace}:{queue_name}.wake"


class PromptRedisBroker(RedisBroker):
    """A RedisBroker whose enqueue also pushes a token onto the queue's wake list, and whose
    idle consumers wait on that list (BLPOP) where the stock consumer sleeps a growing backoff
    of up to a second. An idle worker then starts a new message within milliseconds, while
    polling Redis no more often than before.
    """

    @property
    def consumer_class(self):
        return _PromptConsumer

    def enqueue(self, message: Message, *, delay: int | None = None) -> Message:
        enqueued = super().enqueue(message, delay=delay)
        key = wake_key(self, enqueued.queue_name)
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, 1)
        pipe.ltrim(key, -WAKE_TOKENS_KEPT, -1)
        pipe.execute()
        return enqueued

    def enqueue_many(self, messages: list[Message]) -> list[Message]:
        """Enqueue messages (none delayed) in one round trip to Redis: each one's dispatch,
        as `enqueue` makes it, and one wake token per queue. The scheduler's minute tick sends
        hundreds at once."""
        pipe = self.client.pipeline(transaction=False)
        dispatch = self.scripts["dispatch"]
        maintenance = self._should_do_maintenance("enqueue")
        enqueued = []
        for message in messages:
            message = message.copy(options={"redis_message_id": str(uuid4())})
            self.emit_before("enqueue", message, None)
            dispatch(
                keys=[self.namespace],
                args=[
                    "enqueue",
                    current_millis(),
                    message.queue_name,
                    self.broker_id,
                    self.heartbeat_timeout,
                    self.dead_message_ttl,
                    maintenance,
                    self._max_unpack_size(),
                    message.options["redis_message_id"],
                    message.encode(),
                ],
                client=pipe,
            )
            enqueued.append(message)
        for queue_name, count in Counter(message.queue_name for message in enqueued).items():
            pipe.rpush(wake_key(self, queue_name), *[1] * min(count, WAKE_TOKENS_KEPT))
            pipe.ltrim(wake_key(self, queue_name), -WAKE_TOKENS_KEPT, -1)
        pipe.execute()
        for message in enqueued:
            self.emit_after("enqueue", message, None)
        return enqueued


class _PromptConsumer(_RedisConsumer):
    def __next__(self):
        try:
            while True:
                if self.message_cache:
                    data = self.message_cache.pop(0)
                    if data is None:
                        continue
                    # Handing out a message ends the run of misses, as in the stock consumer:
                    # otherwise every busy turn below would back off longer, up to the timeout.
                    self.misses = 0

                    message = Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
                if self.outstanding_message_count >= self.prefetch:
                    # Busy: let the stock consumer wait its backoff; a wake token is worth
                    # more to a worker that can take the message.
                    return super().__next__()
                controls = controls_view.current()
                queue = base_queue(self.queue_name)
                if shutdown_requested.is_set() or not controls.accepting(queue):
                    # Paused, draining or this worker stopping: fetch nothing, so the messages
                    # stay in Redis for the workers that take them.
                    time.sleep(PAUSED_POLL_SECONDS)
                    return None
                wanted = self.prefetch - self.outstanding_message_count
                if (free := self._free_slots(controls, queue)) is not None:
                    if free <= 0:
                        # At its fleet-wide concurrency: whatever it fetched would go back.
                        time.sleep(PAUSED_POLL_SECONDS)
                        return None
                    wanted = min(wanted, free)
                self.message_cache = self.broker.do_fetch(self.queue_name, wanted)
                if not self.message_cache:
                    self.broker.client.blpop(
                        [wake_key(self.broker, self.queue_name)], timeout=self.timeout / 1000
                    )
                    return None
        except redis.ConnectionError as e:
            raise ConnectionClosed(e) from None

    def _free_slots(self, controls, queue: str) -> int | None:
        """How many more runs of the queue may start fleet-wide; None when it has no limit (or
        this consumes a delay queue, whose messages only wait). The middleware still takes
        each slot; this only keeps the consumer from fetching what would go back."""
        limit = controls.concurrency.get(queue)
        if limit is None or self.queue_name.endswith(".DQ"):
            return None
        return limit - int(self.broker.client.get(concurrency_key(queue)) or 0)
