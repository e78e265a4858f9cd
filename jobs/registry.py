"""The registry of job specs. Domain apps register their jobs here from `AppConfig.ready()`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jobs.conf import conf
from jobs.exceptions import UnknownJob
from jobs.lanes import lane_queue

if TYPE_CHECKING:
    from rest_framework.serializers import Serializer

    from jobs.context import JobContext

JobBody = Callable[["JobContext"], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class FollowUp:
    """A job to request when a run of the declaring job ends `succeeded` (not a dry run).

    `params` derives the follow-up's parameters from the finished run (its summary, the rows
    it recorded as its own); None when the run changed nothing worth following up.
    """

    job: str
    params: Callable[[Any], dict[str, Any] | None]


@dataclasses.dataclass(frozen=True)
class JobSpec:
    name: str
    body: JobBody
    # The cron of the job's default schedule (UTC), created on migrate; "" for none.
    cron: str
    description: str
    queue: str = "default"
    max_retries: int | None = None
    min_backoff_ms: int | None = None
    time_limit_ms: int | None = None
    # Summary keys holding amounts of money in minor units: operators read them with the
    # currency ("₦10,307.00"), not as bare numbers.
    money_keys: tuple[str, ...] = ()
    # Summary keys counting the work done, when not every number in the summary does (a
    # threshold, say): a run whose work keys are all zero logs one line, "nothing to do".
    work_keys: tuple[str, ...] = ()
    # The parameters a run accepts, as a DRF serializer (see `jobs.params`); None: none.
    params: type[Serializer] | None = None
    # The job claims its rows so that concurrent runs never handle one row twice (SKIP LOCKED,
    # or a row lock with the state checked again), so runs with different parameters may run
    # at once: a targeted run takes the lock of its parameters, not the whole job's.
    concurrent_targets: bool = False
    # Whether its schedules run the latest missed slot when the scheduler comes back.
    catch_up: bool = False
    # Whether a partial run alerts; False for a job that alerts on its own terms (once while
    # the same boards keep failing, say).
    alert_partial: bool = True
    # Jobs requested when a run succeeds having changed something, e.g. release_escrows ->
    # check_milestones for the users it touched.
    follow_ups: tuple[FollowUp, ...] = ()

    @property
    def actor_name(self) -> str:
        return f"run_{self.name}"

    @property
    def urgent_actor_name(self) -> str:
        return f"run_{self.name}__urgent"

    def lane(self, *, urgent: bool) -> tuple[str, str]:
        """The queue and actor of a run in its lane."""
        if urgent:
            return lane_queue(self.queue, urgent=True), self.urgent_actor_name
        return self.queue, self.actor_name


_REGISTRY: dict[str, JobSpec] = {}


def _override(spec: JobSpec, option: str, default: Any, cast: Callable[[str], Any]) -> Any:
    raw = conf.JOB_OVERRIDES.get(f"{spec.name.upper()}_{option}")
    return cast(raw) if raw not in (None, "") else default


def _resolve(spec: JobSpec) -> JobSpec:
    """Apply settings defaults and per-job environment overrides."""
    return dataclasses.replace(
        spec,
        cron=_override(spec, "CRON", spec.cron, str),
        max_retries=_override(
            spec,
            "MAX_RETRIES",
            spec.max_retries if spec.max_retries is not None else conf.DEFAULT_MAX_RETRIES,
            int,
        ),
        min_backoff_ms=_override(
            spec,
            "MIN_BACKOFF_MS",
            spec.min_backoff_ms or conf.DEFAULT_MIN_BACKOFF_MS,
            int,
        ),
        time_limit_ms=_override(
            spec,
            "TIME_LIMIT_MS",
            spec.time_limit_ms or conf.DEFAULT_TIME_LIMIT_MS,
            int,
        ),
    )


def register(spec: JobSpec) -> JobSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"job {spec.name!r} is registered twice")
    resolved = _resolve(spec)
    _REGISTRY[spec.name] = resolved
    return resolved


def get_job(name: str) -> JobSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownJob(name, sorted(_REGISTRY)) from None


def all_jobs() -> list[JobSpec]:
    """Every registered job, in registration (catalog) order."""
    return list(_REGISTRY.values())
