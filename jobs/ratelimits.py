"""Per-queue rate limits for jobs that call external services, shared by the whole fleet
through Dramatiq's rate limiters on the Redis backend."""

from __future__ import annotations

import functools

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from dramatiq.rate_limits import ConcurrentRateLimiter, WindowRateLimiter
from dramatiq.rate_limits.backends import RedisBackend

from jobs.conf import conf
from jobs.control_state import concurrency_key, controls_view


def parse_rate_limits(text: str) -> dict[str, tuple[int, int]]:
    """`"notifications=600/60,email=100/60"` -> {name: (limit, window seconds)}."""
    limits = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            name, rate = item.split("=")
            limit, window = (int(value) for value in rate.split("/"))
        except ValueError:
            raise ImproperlyConfigured(
                f"rate limit {item!r} is not NAME=LIMIT/SECONDS (e.g. notifications=600/60)"
            ) from None
        if limit < 1 or window < 1:
            raise ImproperlyConfigured(f"rate limit {item!r} needs a positive limit and window")
        limits[name.strip()] = (limit, window)
    return limits


@functools.cache
def _backend() -> RedisBackend:
    return RedisBackend(url=settings.REDIS_URL)


def rate_limit_in_force(name: str) -> tuple[int, int] | None:
    """(limit, window seconds) of `name`: as an operator set it at run time (published to the
    fleet), else from STEWARD_QUEUE_RATE_LIMITS; None if unlimited."""
    controls = controls_view.current()
    if controls.published:
        return controls.rate_limits.get(name)
    return parse_rate_limits(conf.QUEUE_RATE_LIMITS).get(name)


def rate_limiter(name: str) -> WindowRateLimiter | None:
    """The fleet-wide limiter for `name`, or None if unlimited."""
    configured = rate_limit_in_force(name)
    if configured is None:
        return None
    limit, window = configured
    return WindowRateLimiter(_backend(), f"steward:{name}", limit=limit, window=window)


# Give back slots, never below zero, keeping the count's time to live.
_RETURN_SLOTS = """
local held = tonumber(redis.call('get', KEYS[1]) or '0')
local left = math.max(held - tonumber(ARGV[1]), 0)
if redis.call('exists', KEYS[1]) == 1 then redis.call('set', KEYS[1], left, 'KEEPTTL') end
return left
"""


def concurrency_slots_return(queue: str, count: int) -> int:
    """Give back `count` slots of a queue that a dead worker held; the count left in use."""
    return int(_backend().client.eval(_RETURN_SLOTS, 1, concurrency_key(queue), count))


def concurrency_limiter(queue: str, limit: int, *, ttl_ms: int) -> ConcurrentRateLimiter:
    """The fleet-wide cap on a queue's runs executing at once. A slot lives at most `ttl_ms`
    past the latest change to the count, so one a killed worker held comes back."""
    return ConcurrentRateLimiter(_backend(), concurrency_key(queue), limit=limit, ttl=ttl_ms)
