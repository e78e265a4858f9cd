"""Runtime control of the fleet: pausing and resuming queues, their fleet-wide concurrency, the
rate limits, and draining every worker. Each change is a row and an audit entry in one
transaction; once it commits, the whole state is published to Redis for the workers
(`jobs.control_state`), which obey it within about a second."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from jobs.audit import control_action_record
from jobs.conf import conf
from jobs.control_state import Controls, controls_write
from jobs.exceptions import InvalidInput, NotFoundError, UnknownQueue
from jobs.lanes import base_queue
from jobs.models import (
    AttemptStatus,
    ControlAction,
    FleetState,
    JobRunAttempt,
    QueueState,
    RateLimitSetting,
    WorkerHeartbeat,
)
from jobs.queues import queue_names
from jobs.ratelimits import parse_rate_limits

logger = logging.getLogger("steward.controls")

CONCURRENCY_MAX = 10_000
RATE_LIMIT_MAX = 1_000_000
RATE_WINDOW_MAX_SECONDS = 86_400
REASON_MAX_LENGTH = 500


class UnknownRateLimit(NotFoundError, LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown rate limit {name!r}; known: {', '.join(known)}")


@dataclasses.dataclass(frozen=True)
class QueueControl:
    """What a queue obeys, and where its limits come from."""

    queue: str
    paused: bool
    concurrency: int | None
    # "run time" (set by an operator), "environment", or "" for no limit.
    concurrency_source: str
    rate_limit: tuple[int, int] | None


def controlled_queues() -> list[str]:
    """The queues operators control: each job queue (its urgent lane goes with it) and the
    scheduler's."""
    return sorted({base_queue(name) for name in queue_names()})


def _known(queue: str) -> str:
    known = controlled_queues()
    if queue not in known:
        raise UnknownQueue(queue, known)
    return queue


def rate_limit_names() -> list[str]:
    """The limits that can be set: every queue's, and those the jobs draw on."""
    return sorted(set(controlled_queues()) | set(parse_rate_limits(conf.QUEUE_RATE_LIMITS)))


def controls_snapshot() -> Controls:
    """What the fleet obeys, from the database: run-time values over the environment's."""
    version = ControlAction.objects.aggregate(latest=Max("id"))["latest"] or 0
    states = list(QueueState.objects.all())
    concurrency = dict(conf.QUEUE_CONCURRENCY)
    concurrency.update({state.queue: state.concurrency for state in states if state.concurrency})
    rate_limits = parse_rate_limits(conf.QUEUE_RATE_LIMITS)
    rate_limits.update(
        {
            limit.name: (limit.limit, limit.window_seconds)
            for limit in RateLimitSetting.objects.all()
        }
    )
    return Controls(
        paused=frozenset(state.queue for state in states if state.paused),
        draining=FleetState.objects.filter(draining=True).exists(),
        concurrency=concurrency,
        rate_limits=rate_limits,
        version=version,
    )


def controls_publish() -> bool:
    """Publish the database's controls to Redis, unless a newer copy is there already."""
    return controls_write(controls_snapshot())


def queue_controls() -> dict[str, QueueControl]:
    snapshot = controls_snapshot()
    run_time = dict(
        QueueState.objects.filter(concurrency__isnull=False).values_list("queue", "concurrency")
    )
    controls = {}
    for queue in controlled_queues():
        limit = snapshot.concurrency.get(queue)
        source = "run time" if queue in run_time else "environment" if limit else ""
        controls[queue] = QueueControl(
            queue=queue,
            paused=queue in snapshot.paused,
            concurrency=limit,
            concurrency_source=source,
            rate_limit=snapshot.rate_limits.get(queue),
        )
    return controls


def _reason(reason: str) -> str:
    if len(reason) > REASON_MAX_LENGTH:
        raise InvalidInput({"reason": [f"At most {REASON_MAX_LENGTH} characters."]})
    return reason


def _locked_state(queue: str) -> QueueState:
    QueueState.objects.get_or_create(queue=queue)
    return QueueState.objects.select_for_update().get(queue=queue)


def _changed(**audit) -> None:
    control_action_record(**audit)
    transaction.on_commit(controls_publish)


@transaction.atomic
def queue_pause(*, queue: str, by: str, reason: str = "") -> QueueState:
    """No worker starts a message of the queue (either lane) from about a second after this
    commits; its messages stay where they are."""
    return _set_paused(queue=queue, paused=True, by=by, reason=reason)


@transaction.atomic
def queue_resume(*, queue: str, by: str, reason: str = "") -> QueueState:
    return _set_paused(queue=queue, paused=False, by=by, reason=reason)


def _set_paused(*, queue: str, paused: bool, by: str, reason: str) -> QueueState:
    reason = _reason(reason)
    state = _locked_state(_known(queue))
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
    reason = _reason(reason)
    before = queue_controls()[_known(queue)].concurrency
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
    reason = _reason(reason)
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


def fleet_draining() -> FleetState | None:
    """The fleet's drain, when one is on."""
    return FleetState.objects.filter(draining=True).first()


@transaction.atomic
def fleet_drain_start(*, by: str, reason: str = "") -> FleetState:
    """Every worker stops taking messages (the runs they hold finish); `fleet_drain_end` lets
    them take messages again."""
    return _set_draining(draining=True, by=by, reason=reason)


@transaction.atomic
def fleet_drain_end(*, by: str, reason: str = "") -> FleetState:
    return _set_draining(draining=False, by=by, reason=reason)


def _set_draining(*, draining: bool, by: str, reason: str) -> FleetState:
    reason = _reason(reason)
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


def runs_executing() -> list[JobRunAttempt]:
    """The attempts live workers are executing now, oldest first."""
    cutoff = timezone.now() - timedelta(seconds=conf.WORKER_LOST_AFTER)
    live = WorkerHeartbeat.objects.filter(last_seen_at__gte=cutoff).values("name")
    return list(
        JobRunAttempt.objects.filter(status=AttemptStatus.RUNNING, worker__in=live)
        .select_related("run")
        .order_by("started_at")
    )
