"""How hard the fault scenarios push: a short configuration for CI, a long one for
`make faults`. FAULTS_PROFILE picks one (default short)."""

from __future__ import annotations

import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    # Dramatiq: a silent worker counts as dead after this; maintenance runs on every command.
    heartbeat_timeout_ms: int = 3_000
    maintenance_chance: int = 1_000_000
    min_backoff_ms: int = 300
    batch_size: int = 20
    # Escrows due at the start of the single-run scenarios: enough for a run of seconds.
    backlog: int = 1_500
    kills: int = 1
    stops: int = 1
    duplicate_sends: int = 1
    terminations: int = 2
    redis_restarts: int = 1
    # Minute slots the two schedulers tick through in the compressed-time scenario.
    slots: int = 2
    scheduler_restarts: int = 1
    # The fanned-out release killed mid-way: escrows due, and rows per shard.
    fan_out_backlog: int = 1_500
    shard_size: int = 150
    # Pause-and-cancel rounds: how long the money queue stays paused in each, and the escrows
    # due when a release is cancelled (in batches of `cancel_batch_size`, so it spans many).
    control_rounds: int = 1
    pause_seconds: float = 6.0
    cancel_backlog: int = 600
    cancel_batch_size: int = 10


PROFILES = {
    "short": Profile(name="short"),
    "long": Profile(
        name="long",
        backlog=2_500,
        kills=3,
        stops=2,
        duplicate_sends=5,
        terminations=5,
        redis_restarts=2,
        slots=6,
        scheduler_restarts=3,
        fan_out_backlog=6_000,
        shard_size=500,
        control_rounds=3,
        pause_seconds=20.0,
        cancel_backlog=1_500,
    ),
}


def current_profile() -> Profile:
    name = os.environ.get("FAULTS_PROFILE", "short")
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"FAULTS_PROFILE={name!r}; choose one of {', '.join(PROFILES)}") from None
