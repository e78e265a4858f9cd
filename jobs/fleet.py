"""What the fleet obeys and what it is doing: each queue's counts and controls, the rate
limits, the snapshot the workers are given, the drain and the runs executing."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta

from django.db import connection
from django.db.models import Max
from django.utils import timezone

from jobs.conf import conf
from jobs.control_state import Controls
from jobs.exceptions import NotFoundError, UnknownQueue
from jobs.lanes import base_queue, lane_of
from jobs.models import (
    AttemptStatus,
    ControlAction,
    FleetState,
    JobRunAttempt,
    QueueState,
    RateLimitSetting,
    WorkerHeartbeat,
)
from jobs.queues import queue_names, queue_stats
from jobs.ratelimits import parse_rate_limits
from jobs.registry import get_job


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


def known_queue(queue: str) -> str:
    """`queue` when operators control it, else UnknownQueue naming those they do."""
    known = controlled_queues()
    if queue not in known:
        raise UnknownQueue(queue, known)
    return queue


def rate_limit_names() -> list[str]:
    """The limits that can be set: every queue's, and those the jobs draw on."""
    return sorted(set(controlled_queues()) | set(parse_rate_limits(conf.QUEUE_RATE_LIMITS)))


def database_identity() -> str:
    """Which database the controls come from, so a copy in Redis left by another one (a
    database reset, a second checkout sharing this Redis) is not taken for a newer one."""
    settings_dict = connection.settings_dict
    where = f"{settings_dict['ENGINE']}|{settings_dict['HOST']}|{settings_dict['PORT']}"
    return hashlib.blake2b(f"{where}|{settings_dict['NAME']}".encode(), digest_size=8).hexdigest()


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
        source=database_identity(),
        paused=frozenset(state.queue for state in states if state.paused),
        draining=FleetState.objects.filter(draining=True).exists(),
        concurrency=concurrency,
        rate_limits=rate_limits,
        version=version,
    )


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


@dataclasses.dataclass(frozen=True)
class QueueOverview:
    """One Dramatiq queue (a lane of a controlled queue) with its counts and the controls of
    its queue, as every surface lists them."""

    name: str
    queue: str
    lane: str
    waiting: int
    delayed: int
    in_flight: int
    dead_lettered: int
    paused: bool
    concurrency: int | None
    concurrency_source: str
    rate_limit: tuple[int, int] | None


def queue_overviews() -> list[QueueOverview]:
    controls = queue_controls()
    overviews = []
    for stats in queue_stats():
        control = controls[base_queue(stats.name)]
        overviews.append(
            QueueOverview(
                name=stats.name,
                queue=control.queue,
                lane=lane_of(stats.name),
                waiting=stats.waiting,
                delayed=stats.delayed,
                in_flight=stats.in_flight,
                dead_lettered=stats.dead_lettered,
                paused=control.paused,
                concurrency=control.concurrency,
                concurrency_source=control.concurrency_source,
                rate_limit=control.rate_limit,
            )
        )
    return overviews


@dataclasses.dataclass(frozen=True)
class RateLimitOverview:
    name: str
    limit: int | None
    window_seconds: int | None
    # "run time", "environment", or "" for none.
    source: str


def rate_limit_overviews() -> list[RateLimitOverview]:
    run_time = {setting.name: setting for setting in RateLimitSetting.objects.all()}
    configured = parse_rate_limits(conf.QUEUE_RATE_LIMITS)
    overviews = []
    for name in rate_limit_names():
        if name in run_time:
            setting = run_time[name]
            limit, window, source = setting.limit, setting.window_seconds, "run time"
        elif name in configured:
            (limit, window), source = configured[name], "environment"
        else:
            limit, window, source = None, None, ""
        overviews.append(RateLimitOverview(name, limit, window, source))
    return overviews


def fleet_draining() -> FleetState | None:
    """The fleet's drain, when one is on."""
    return FleetState.objects.filter(draining=True).first()


def runs_executing() -> list[JobRunAttempt]:
    """The attempts live workers are executing now, oldest first."""
    cutoff = timezone.now() - timedelta(seconds=conf.WORKER_LOST_AFTER)
    live = WorkerHeartbeat.objects.filter(last_seen_at__gte=cutoff).values("name")
    return list(
        JobRunAttempt.objects.filter(status=AttemptStatus.RUNNING, worker__in=live)
        .select_related("run")
        .order_by("started_at")
    )


def fleet_workers() -> list[WorkerHeartbeat]:
    """Every worker and scheduler process that beat, the schedulers first."""
    return list(WorkerHeartbeat.objects.order_by("role", "name"))


def run_held_back(run) -> str:
    """Why a queued run will not start yet, for the person who just asked for it: its queue is
    paused or the fleet drains ("" when neither)."""
    queue = get_job(run.job).queue
    if FleetState.objects.filter(draining=True).exists():
        return "the workers are draining; it starts once the drain ends"
    if QueueState.objects.filter(queue=queue, paused=True).exists():
        return f"the {queue} queue is paused; it starts once the queue is resumed"
    return ""
