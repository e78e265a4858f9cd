"""What the operator surfaces show, already worded and formatted for a person.

The engine knows nothing about escrows: `STEWARD_DASHBOARD_LAG` names a function of a domain
app that takes `as_of` and returns a `Panel`, and the dashboard renders its title and figures
as they are. Run summaries are shown as labelled figures ("escrows_released" -> "Escrows
released"), the keys a job declares as `money_keys` with the currency (`money_text`, which the
ledger formats its own amounts with too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from jobs.conf import conf
from jobs.exceptions import UnknownJob
from jobs.registry import get_job

# Money is kept in minor units: 100 kobo to the naira.
MINOR_UNITS = 100
# A list in a summary shows this many items, then how many more there are.
LIST_ITEMS_SHOWN = 5


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


@dataclasses.dataclass(frozen=True)
class TrendPoint:
    day: date
    value: int | None  # None: nothing recorded that day


@dataclasses.dataclass(frozen=True)
class Trend:
    """A domain figure over the last days, drawn on the dashboard's index page as a chart
    (`STEWARD_DASHBOARD_TRENDS` names the functions that give them)."""

    title: str
    points: list[TrendPoint]  # oldest first, one a day
    money: bool = False  # values are minor units, shown with the currency
    note: str = ""


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


def millis_text(value: int | None) -> str:
    """Milliseconds as a person reads a duration: "842 ms", "2.4 s", "38 s", "3 min 20 s",
    "2 h 5 min"; "—" for none."""
    if value is None:
        return "—"
    ms = int(value)
    if ms < 1_000:
        return f"{ms:,} ms"
    seconds = ms / 1_000
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, second = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {second} s" if second else f"{minutes} min"
    hours, minute = divmod(minutes, 60)
    return f"{hours:,} h {minute} min" if minute else f"{hours:,} h"


def money_text(amount: int) -> str:
    """Minor units as a person reads the currency: 123456 -> "₦1,234.56" (STEWARD_CURRENCY)."""
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(int(amount)), MINOR_UNITS)
    return f"{sign}{conf.CURRENCY}{major:,}.{minor:02d}"


def summary_label(key: str) -> str:
    """E.g. "escrows_released" -> "Escrows released"."""
    return key.replace("_", " ").strip().capitalize() or key


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _number_text(value: Any, *, money: bool = False) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return money_text(value) if money else f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _list_text(values: list) -> str:
    shown = ", ".join(_number_text(value) for value in values[:LIST_ITEMS_SHOWN])
    more = len(values) - LIST_ITEMS_SHOWN
    return f"{shown} and {more:,} more" if more > 0 else shown or "none"


def summary_figures(
    summary: Mapping[str, Any] | None, *, money_keys: Iterable[str] = (), detail: bool = False
) -> list[Figure]:
    """A run summary's figures, labelled, in key order, money keys with the currency.

    The `dry_run` flag is left out (the run is marked as a dry run instead). In a list
    (`detail` False) only single values are shown; the run's page (`detail` True) also shows
    lists and mappings of single values ("Due by channel: email 3, sms 1"), leaving deeper
    structures to the full summary.
    """
    if not isinstance(summary, Mapping):
        return []
    money = set(money_keys)
    figures = []
    for key in sorted(summary):
        value = summary[key]
        if key == "dry_run":
            continue
        if _scalar(value):
            text = _number_text(value, money=key in money)
        elif not detail:
            continue
        elif isinstance(value, list) and all(_scalar(item) for item in value):
            text = _list_text(value)
        elif isinstance(value, Mapping) and all(_scalar(item) for item in value.values()):
            text = ", ".join(f"{name} {_number_text(item)}" for name, item in value.items())
            text = text or "none"
        else:
            continue
        figures.append(Figure(value=text, label=summary_label(key)))
    return figures


def job_money_keys(job: str) -> tuple[str, ...]:
    """The summary keys `job` declares as money; none for a job no longer registered."""
    try:
        return get_job(job).money_keys
    except UnknownJob:
        return ()


def run_summary_figures(run: Any, *, detail: bool = False) -> list[Figure]:
    """`summary_figures` of a run (anything with `job` and `summary`), with its job's money."""
    return summary_figures(run.summary, money_keys=job_money_keys(run.job), detail=detail)
