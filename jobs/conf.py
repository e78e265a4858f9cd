"""The engine's settings: each one's default and meaning, read through one object.

`conf.BATCH_SIZE` is Django's `STEWARD_BATCH_SIZE` when the project sets it, else the default
here, read at every access (so a test's settings override applies at once). A deployment sets
any of them in the environment as `STEWARD_<NAME>` (see `from_environment`); the engine works
with none set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

PREFIX = "STEWARD_"
JOB_OVERRIDE_PREFIX = "STEWARD_JOB_"
QUEUE_PREFIX, CONCURRENCY_SUFFIX = "STEWARD_QUEUE_", "_CONCURRENCY"


@dataclasses.dataclass(frozen=True)
class Setting:
    default: Any
    meaning: str
    parse: Callable[[str], Any] | None = None


def _comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


SETTINGS: dict[str, Setting] = {
    "CODE_VERSION": Setting("unknown", "The deployed revision, recorded on every run."),
    "DEFAULT_MAX_RETRIES": Setting(3, "Retries of a failed attempt, unless the job says."),
    "DEFAULT_MIN_BACKOFF_MS": Setting(2_000, "First retry's backoff; it doubles each retry."),
    "DEFAULT_TIME_LIMIT_MS": Setting(30 * 60 * 1000, "An attempt running longer is stopped."),
    "JOB_OVERRIDES": Setting(
        {},
        "Per-job <NAME>_CRON (the default schedule's cron on the first migrate) / "
        "_MAX_RETRIES / _MIN_BACKOFF_MS / _TIME_LIMIT_MS, from the environment's "
        "STEWARD_JOB_<NAME>_<OPTION>.",
    ),
    "ALERT_BACKEND": Setting(
        "jobs.alerts.MailAdminsAlertBackend", "Where failed and partial runs are reported."
    ),
    "BATCH_SIZE": Setting(1_000, "Rows a sweep claims and commits per transaction."),
    "FANOUT_THRESHOLD": Setting(
        20_000, "A backlog above this goes to shard runs any worker can take; 0 turns it off."
    ),
    "SHARD_SIZE": Setting(5_000, "Rows per shard run."),
    "TICK_SKIP_DELAY_SECONDS": Setting(
        3_600, "A schedule tick older than this is dropped; ticks only record their slot."
    ),
    "MISSED_SLOT_WINDOW_HOURS": Setting(
        24,
        "How far back missed slots are reported, and caught up, after the scheduler was down.",
    ),
    "QUEUE_RATE_LIMITS": Setting(
        "",
        "Fleet-wide rate limits, 'name=limit/seconds,...': a queue's name limits the runs it "
        "starts, any other name is drawn on by the jobs. Changeable at run time.",
    ),
    "QUEUE_CONCURRENCY": Setting(
        {},
        "Per queue, the most runs executing at once across the fleet, from the environment's "
        "STEWARD_QUEUE_<NAME>_CONCURRENCY. Changeable at run time.",
    ),
    "PROGRESS_SAVE_SECONDS": Setting(
        2.0, "Seconds between saves of a running run's progress and log lines.", float
    ),
    "RUN_LOG_LINES": Setting(200, "Lines of its own log kept per attempt of a run (the last)."),
    "SHUTDOWN_TIMEOUT": Setting(
        30, "Seconds a stopping worker gives its runs to finish their batch and hand back."
    ),
    "METRICS_COLLECTORS": Setting(
        ["jobs.metrics.JobRunCollector"], "Prometheus collectors behind /metrics.", _comma_list
    ),
    "METRICS_TOKEN": Setting(
        "", "Bearer token for /metrics; without one it is open only with DEBUG or METRICS_PUBLIC."
    ),
    "METRICS_PUBLIC": Setting(False, "Serve /metrics without a token even with DEBUG off."),
    "AS_OF_WINDOW_DAYS": Setting(
        3_653, "How far from now, either way, a requested run's as_of may be (ten years)."
    ),
    "DASHBOARD_REFRESH_SECONDS": Setting(15, "Seconds between the dashboard's refreshes."),
    "DASHBOARD_LAG": Setting(
        "", "Dotted path of a function giving the dashboard's business-lag panel; empty: none."
    ),
    "DASHBOARD_TRENDS": Setting(
        [],
        "Dotted paths of functions of a domain app that take `as_of` and return a "
        "`jobs.panels.Trend`, drawn on the dashboard's index page.",
        _comma_list,
    ),
    "WORKER_HEARTBEAT_SECONDS": Setting(5, "Seconds between a worker process's heartbeats."),
    "WORKER_LOST_AFTER": Setting(
        60, "Seconds after its last heartbeat that a worker process counts as gone."
    ),
    "LOST_RUN_AFTER": Setting(
        300, "Seconds a run may stay queued with its message in no queue before it is re-sent."
    ),
    "CURRENCY": Setting(
        "₦",
        "Symbol of the amounts operators read: jobs' money summary keys and the ledger's, "
        "kept in minor units (100 to one).",
    ),
    "RUN_RETENTION_DAYS": Setting(30, "Finished runs are pruned after this many days."),
    "FAILED_RUN_RETENTION_DAYS": Setting(90, "Failed and partial runs are kept this long."),
}


def _parse(setting: Setting, value: str) -> Any:
    if setting.parse is not None:
        return setting.parse(value)
    if isinstance(setting.default, bool):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(setting.default, int):
        return int(value)
    return value


def from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The Django settings a deployment gave in the environment, for `project/settings.py`:
    `STEWARD_<NAME>` cast like its default, every `STEWARD_JOB_<NAME>_<OPTION>` and every
    `STEWARD_QUEUE_<NAME>_CONCURRENCY`."""
    found: dict[str, Any] = {}
    for name, setting in SETTINGS.items():
        value = environ.get(PREFIX + name)
        if value not in (None, "") and name not in ("JOB_OVERRIDES", "QUEUE_CONCURRENCY"):
            found[PREFIX + name] = _parse(setting, value)
    found[PREFIX + "JOB_OVERRIDES"] = {
        key.removeprefix(JOB_OVERRIDE_PREFIX): value
        for key, value in environ.items()
        if key.startswith(JOB_OVERRIDE_PREFIX)
    }
    found[PREFIX + "QUEUE_CONCURRENCY"] = {
        key.removeprefix(QUEUE_PREFIX).removesuffix(CONCURRENCY_SUFFIX).lower(): _concurrency(
            key, value
        )
        for key, value in environ.items()
        if key.startswith(QUEUE_PREFIX) and key.endswith(CONCURRENCY_SUFFIX) and value
    }
    return found


def _concurrency(variable: str, value: str) -> int:
    if not value.strip().isdigit() or int(value) < 1:
        raise ImproperlyConfigured(f"{variable} must be a whole number of 1 or more, not {value!r}")
    return int(value)


class EngineSettings:
    def __getattr__(self, name: str) -> Any:
        try:
            setting = SETTINGS[name]
        except KeyError:
            raise AttributeError(f"no engine setting {name!r}") from None
        return getattr(django_settings, PREFIX + name, setting.default)


conf = EngineSettings()
