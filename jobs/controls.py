"""Runtime control of the fleet: pausing and resuming queues, their fleet-wide concurrency, the
rate limits, and draining every worker. Each change is a row and an audit entry in one
transaction; once it commits, the whole state is published to Redis for the workers
(`jobs.control_state`), which obey it within about a second."""

from __future__ import annotations

import logging

import redis
from django.db import transaction
from django.utils import timezone

from jobs.audit import audited_reason, control_action_record
from jobs.conf import conf
from jobs.control_state import controls_write
from jobs.exceptions import InvalidInput
from jobs.fleet import (
    UnknownRateLimit,
    controls_snapshot,
    known_queue,
    queue_controls,
    rate_limit_names,
)
from jobs.models import (
    ControlAction,
    FleetState,
    QueueState,
    RateLimitSetting,
)
from jobs.ratelimits import parse_rate_limits

logger = logging.getLogger("steward.controls")

CONCURRENCY_MAX = 10_000
RATE_LIMIT_MAX = 1_000_000
RATE_WINDOW_MAX_SECONDS = 86_400


def controls_publish() -> bool:
    """Publish the database's controls to Redis, unless a newer copy is there already."""
    return controls_write(controls_snapshot())


def _locked_state(queue: str) -> QueueState:
    QueueState.objects.get_or_create(queue=queue)
    return QueueState.objects.select_for_update().get(queue=queue)


def _changed(**audit) -> None:
    control_action_record(**audit)
    transaction.on_commit(_publish_after_change)


def _publish_after_change() -> None:
    # The change is recorded either way; with Redis away, the workers' heartbeats publish it
    # once it is back, and an operator is not told a saved change failed.
    try:
        controls_publish()
    except redis.RedisError as exc:
        logger.warning("Recorded the change; could not publish it to the workers yet: %s", exc)


@transaction.atomic
def queue_pause(*, queue: str, by: str, reason: str = "") -> QueueState:
    """No worker starts a message of the queue (either lane) from about a second after this
    commits; its messages stay where they are."""
    return _set_paused(queue=queue, paused=True, by=by, reason=reason)


@transaction.atomic
def queue_resume(*, queue: str, by: str, reason: str = "") -> QueueState:
    return _set_paused(queue=queue, paused=False, by=by, reason=reason)


def _set_paused(*, queue: str, paused: bool, by: str, reason: str) -> QueueState:
    reason = audited_reason(reason)
    state = _locked_state(known_queue(queue))
    if state.paused == paused:
        return state
    state.paused = paused
    state.save(update_fields=["paused", "updated_at"])
    _changed(
        action=ControlAction.Action.QUEUE_PAUSED if paused else ControlAction.Action.QUEUE_RESUMED,
        target_type=ControlAction.Target.QUEUE,
        target=queue,
        actor=by,
        reason=reason,
        before={"paused": not paused},
        after={"paused": paused},
    )
    return state


def _whole_number(field: str, value, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput({field: [f"A whole number from {low:,} to {high:,}."]})
    return value


@transaction.atomic
def queue_concurrency_set(
    *, queue: str, concurrency: int | None, by: str, reason: str = ""
) -> QueueState:
    """The most runs of the queue executing at once across the fleet; None goes back to the
    environment's STEWARD_QUEUE_<NAME>_CONCURRENCY (or no limit)."""
    if concurrency is not None:
        concurrency = _whole_number("concurrency", concurrency, low=1, high=CONCURRENCY_MAX)
    reason = audited_reason(reason)
    before = queue_controls()[known_queue(queue)].concurrency
    state = _locked_state(queue)
    state.concurrency = concurrency
    state.save(update_fields=["concurrency", "updated_at"])
    after = conf.QUEUE_CONCURRENCY.get(queue) if concurrency is None else concurrency
    _changed(
        action=ControlAction.Action.CONCURRENCY_CHANGED,
        target_type=ControlAction.Target.QUEUE,
        target=queue,
        actor=by,
        reason=reason,
        before={"concurrency": before},
        after={"concurrency": after},
    )
    return state


@transaction.atomic
def rate_limit_set(
    *, name: str, limit: int | None, window_seconds: int | None, by: str, reason: str = ""
) -> tuple[int, int] | None:
    """Set a fleet-wide rate limit (`limit` per `window_seconds`); None for both goes back to
    STEWARD_QUEUE_RATE_LIMITS (or no limit). Returns the limit now in force."""
    known = rate_limit_names()
    if name not in known:
        raise UnknownRateLimit(name, known)
    reason = audited_reason(reason)
    if (limit is None) != (window_seconds is None):
        raise InvalidInput({"limit": ["Give both limit and window_seconds, or neither."]})
    if limit is not None:
        errors = {}
        for field, value, high in (
            ("limit", limit, RATE_LIMIT_MAX),
            ("window_seconds", window_seconds, RATE_WINDOW_MAX_SECONDS),
        ):
            try:
                _whole_number(field, value, low=1, high=high)
            except InvalidInput as exc:
                errors.update(exc.fields)
        if errors:
            raise InvalidInput(errors)
    before = controls_snapshot().rate_limits.get(name)
    if limit is None:
        RateLimitSetting.objects.filter(name=name).delete()
        after = parse_rate_limits(conf.QUEUE_RATE_LIMITS).get(name)
    else:
        RateLimitSetting.objects.update_or_create(
            name=name, defaults={"limit": limit, "window_seconds": window_seconds}
        )
        after = (limit, window_seconds)
    _changed(
        action=ControlAction.Action.RATE_LIMIT_CHANGED,
        target_type=ControlAction.Target.RATE_LIMIT,
        target=name,
        actor=by,
        reason=reason,
        before={"rate_limit": _rate_text(before)},
        after={"rate_limit": _rate_text(after)},
    )
    return after


def _rate_text(rate: tuple[int, int] | None) -> str | None:
    return None if rate is None else f"{rate[0]}/{rate[1]}s"


@transaction.atomic
def fleet_drain_start(*, by: str, reason: str = "") -> FleetState:
    """Every worker stops taking messages (the runs they hold finish); `fleet_drain_end` lets
    them take messages again."""
    return _set_draining(draining=True, by=by, reason=reason)


@transaction.atomic
def fleet_drain_end(*, by: str, reason: str = "") -> FleetState:
    return _set_draining(draining=False, by=by, reason=reason)


def _set_draining(*, draining: bool, by: str, reason: str) -> FleetState:
    reason = audited_reason(reason)
    FleetState.objects.get_or_create(pk=1)
    state = FleetState.objects.select_for_update().get(pk=1)
    if state.draining == draining:
        return state
    state.draining = draining
    state.draining_since = timezone.now() if draining else None
    state.save()
    _changed(
        action=ControlAction.Action.DRAIN_STARTED if draining else ControlAction.Action.DRAIN_ENDED,
        target_type=ControlAction.Target.FLEET,
        target="fleet",
        actor=by,
        reason=reason,
        before={"draining": not draining},
        after={"draining": draining},
    )
    return state
