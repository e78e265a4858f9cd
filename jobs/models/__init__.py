"""The engine's models: runs and their attempts, schedules, and the fleet's controls and audit.
The database is the record; Redis only carries hints."""

from jobs.models.fleet import (
    ControlAction,
    FleetState,
    QueueState,
    RateLimitSetting,
    WorkerHeartbeat,
)
from jobs.models.runs import (
    FINISHED_STATUSES,
    RUN_TRANSITIONS,
    AttemptStatus,
    JobRun,
    JobRunAttempt,
    JobState,
    RunStatus,
    Trigger,
    cancel_text,
    run_move,
)
from jobs.models.schedules import Schedule, ScheduleChange

__all__ = [
    "AttemptStatus",
    "ControlAction",
    "FINISHED_STATUSES",
    "FleetState",
    "JobRun",
    "JobRunAttempt",
    "JobState",
    "QueueState",
    "RUN_TRANSITIONS",
    "RateLimitSetting",
    "RunStatus",
    "Schedule",
    "ScheduleChange",
    "Trigger",
    "WorkerHeartbeat",
    "cancel_text",
    "run_move",
]
