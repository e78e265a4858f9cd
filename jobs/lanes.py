"""Priority lanes: each job queue has an urgent lane, a queue of its own that workers take
from before the normal one. Dramatiq's Redis broker honours a message's priority only inside
one worker's prefetch, so a lane is a separate queue, consumed by a separate actor of higher
priority; a queue's pause and limits cover both of its lanes."""

from __future__ import annotations

from dramatiq import Message

URGENT_SUFFIX = "-urgent"
NORMAL, URGENT = "normal", "urgent"
# Dramatiq's actor priority: lower runs first among the messages a worker has prefetched.
URGENT_PRIORITY = -10


def lane_queue(queue: str, *, urgent: bool) -> str:
    return f"{queue}{URGENT_SUFFIX}" if urgent else queue


def base_queue(queue_name: str) -> str:
    """The queue whose controls a Dramatiq queue (a lane, or its delay queue) obeys."""
    for suffix in (".DQ", ".XQ"):
        queue_name = queue_name.removesuffix(suffix)
    return queue_name.removesuffix(URGENT_SUFFIX)


def lane_of(queue_name: str) -> str:
    return URGENT if queue_name.removesuffix(".DQ").endswith(URGENT_SUFFIX) else NORMAL


def message_again(message: Message) -> Message:
    """A copy of a message to send again as it is (same id, same retries), to its own queue:
    without the delay of its last trip, as Dramatiq's worker copies a delayed message."""
    again = message.copy(queue_name=message.queue_name.removesuffix(".DQ"))
    again.options.pop("eta", None)
    return again
