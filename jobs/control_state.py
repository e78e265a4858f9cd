"""What the workers obey at run time, published to Redis by the control services: paused
queues, a fleet-wide drain, each queue's concurrency and the rate limits. The database holds
the record (`QueueState`, `RateLimitSetting`, `FleetState`); this is its copy for the workers,
read at most once a second by each worker process, so a change reaches the fleet in about a
second without a query per message. Nothing here imports Django models: the broker and its
middleware are built before the apps are ready."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import threading
import time
from collections import Counter

import redis
from django.conf import settings

logger = logging.getLogger("steward.controls")

SNAPSHOT_KEY = "steward:controls"
REFRESH_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class Controls:
    paused: frozenset[str] = frozenset()
    draining: bool = False
    # Queue -> the most runs of it executing at once across the fleet.
    concurrency: dict[str, int] = dataclasses.field(default_factory=dict)
    # Rate limit name -> (limit, window seconds); a queue's name limits the runs it starts.
    rate_limits: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    # The newest audit entry it reflects: an older copy never overwrites a newer one of the
    # same database (`source`); a copy from another database sharing this Redis always does.
    version: int = 0
    source: str = ""
    # Whether this came from Redis; a worker that cannot read it obeys its last known copy.
    published: bool = True

    def accepting(self, queue: str) -> bool:
        return not self.draining and queue not in self.paused

    def encode(self) -> str:
        return json.dumps(
            {
                "paused": sorted(self.paused),
                "draining": self.draining,
                "concurrency": self.concurrency,
                "rate_limits": {name: list(rate) for name, rate in self.rate_limits.items()},
                "version": self.version,
                "source": self.source,
            },
            sort_keys=True,
        )

    @classmethod
    def decode(cls, text: str | bytes) -> Controls:
        data = json.loads(text)
        return cls(
            paused=frozenset(data.get("paused", ())),
            draining=bool(data.get("draining")),
            concurrency={name: int(limit) for name, limit in data.get("concurrency", {}).items()},
            rate_limits={
                name: (int(limit), int(window))
                for name, (limit, window) in data.get("rate_limits", {}).items()
            },
            version=int(data.get("version", 0)),
            source=str(data.get("source", "")),
        )


def concurrency_key(queue: str) -> str:
    """Where Dramatiq's ConcurrentRateLimiter counts a queue's runs executing fleet-wide."""
    return f"steward:queue-concurrency:{queue}"


@functools.cache
def control_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5)


# Set the snapshot unless the one there reflects a newer change of the same database: a
# worker's periodic publish that read the database just before an operator's change never
# undoes it, and a copy left by another database (a reset one) is replaced.
_WRITE_UNLESS_NEWER = """
local current = redis.call('get', KEYS[1])
if current then
  local published = cjson.decode(current)
  if published['source'] == ARGV[3] and published['version'] > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('set', KEYS[1], ARGV[1])
return 1
"""


def controls_write(controls: Controls) -> bool:
    """Publish `controls`; False when a newer copy is there already."""
    written = control_client().eval(
        _WRITE_UNLESS_NEWER, 1, SNAPSHOT_KEY, controls.encode(), controls.version, controls.source
    )
    controls_view.forget()
    return bool(written)


def controls_read() -> Controls | None:
    """The published controls; None when nothing is published (a fresh or restarted Redis)."""
    text = control_client().get(SNAPSHOT_KEY)
    return None if text is None else Controls.decode(text)


class ControlsView:
    """This process's copy of the published controls, refreshed at most every second."""

    def __init__(self) -> None:
        self._controls = Controls(published=False)
        self._read_at = float("-inf")
        self._guard = threading.Lock()

    def current(self) -> Controls:
        now = time.monotonic()
        if now - self._read_at < REFRESH_SECONDS:
            return self._controls
        with self._guard:
            if now - self._read_at >= REFRESH_SECONDS:
                try:
                    self._controls = controls_read() or Controls(published=False)
                except redis.RedisError as exc:
                    logger.warning("Could not read the queue controls, keeping the last: %s", exc)
                self._read_at = time.monotonic()
        return self._controls

    def forget(self) -> None:
        self._read_at = float("-inf")


controls_view = ControlsView()

# The concurrency slots this process holds, per queue, for its heartbeat to record.
_slots_held: Counter[str] = Counter()
_slots_guard = threading.Lock()


def slot_taken(queue: str) -> None:
    with _slots_guard:
        _slots_held[queue] += 1


def slot_returned(queue: str) -> None:
    with _slots_guard:
        _slots_held[queue] -= 1
        if _slots_held[queue] <= 0:
            del _slots_held[queue]


def slots_held() -> dict[str, int]:
    with _slots_guard:
        return dict(_slots_held)
