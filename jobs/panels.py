"""What a domain app gives the dashboard to show, already worded and formatted for a person.

The engine knows nothing about escrows or money: `STEWARD_DASHBOARD_LAG` names a function of
a domain app that takes `as_of` and returns a `Panel`, and the dashboard renders its title
and figures as they are.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta


@dataclasses.dataclass(frozen=True)
class Figure:
    value: str
    label: str


@dataclasses.dataclass(frozen=True)
class Panel:
    title: str
    figures: list[Figure]
    # True when the figures call for an operator's attention (shown highlighted).
    alarming: bool = False


def duration_words(seconds: float) -> str:
    """E.g. "none", "12 min", "3 h 5 min", "2 d 1 h"."""
    if seconds <= 0:
        return "none"
    rounded = timedelta(seconds=int(seconds))
    days, rest = divmod(int(rounded.total_seconds()), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes or not parts:
        parts.append(f"{minutes} min")
    return " ".join(parts)
