"""A job's trends over the last days: per day, its runs' duration, its messages' wait for a
worker and the items its runs processed, drawn as inline SVG bars (no script, nothing fetched);
and the domain apps' trends (`STEWARD_DASHBOARD_TRENDS`) drawn the same way on the index page.

"Items processed" is what a run's summary counts as work: the job's `work_keys` when it names
them, else every number in the summary that is not money (flags and words do not count, as
for `jobs.runlog.did_nothing`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from datetime import date, datetime, timedelta
from html import escape

from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.safestring import SafeString, mark_safe

from jobs.conf import conf
from jobs.models import FINISHED_STATUSES, JobRun, JobRunAttempt, RunStatus
from jobs.panels import Trend, millis_text, money_text
from jobs.registry import JobSpec
from jobs.run_selectors import percentile

logger = logging.getLogger("steward.dashboard")

TREND_DAYS = 30
TREND_WIDTH = 600
TREND_HEIGHT = 72
WORK_STATUSES = (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED)


def items_processed(summary, spec: JobSpec) -> int:
    """The items a run's summary says it processed: its work keys' numbers (a flag among them
    counts one when set), or, for a job that names none, every number but money."""
    if not isinstance(summary, dict):
        return 0
    if spec.work_keys:
        values = [summary.get(key) for key in spec.work_keys]
        return sum(int(value) for value in values if isinstance(value, int | float))
    money = set(spec.money_keys)
    return sum(
        value
        for key, value in summary.items()
        if key not in money and isinstance(value, int | float) and not isinstance(value, bool)
    )


@dataclasses.dataclass(frozen=True)
class TrendDay:
    day: date
    runs: int
    duration_p50_ms: int | None
    duration_p95_ms: int | None
    wait_p50_ms: int | None
    wait_p95_ms: int | None
    items: int


def job_trend_days(
    spec: JobSpec, *, now: datetime | None = None, days: int = TREND_DAYS
) -> list[TrendDay]:
    """The job's last `days` days, oldest first, each day in the current time zone, in two
    queries: its finished runs (top-level, not dry runs: as its statistics count them) and its
    attempts' waits (shards' too: they waited in the same queue)."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    first = today - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    runs = JobRun.objects.filter(
        job=spec.name,
        parent__isnull=True,
        dry_run=False,
        status__in=FINISHED_STATUSES,
        finished_at__gte=since,
    ).values_list("finished_at", "status", "duration_ms", "summary")
    waits = JobRunAttempt.objects.filter(
        run__job=spec.name, started_at__gte=since, wait_ms__isnull=False
    ).values_list("started_at", "wait_ms")
    counted: dict[date, int] = defaultdict(int)
    durations: dict[date, list[int]] = defaultdict(list)
    items: dict[date, int] = defaultdict(int)
    for finished_at, status, duration_ms, summary in runs:
        day = timezone.localdate(finished_at)
        counted[day] += 1
        if status in WORK_STATUSES and duration_ms is not None:
            durations[day].append(duration_ms)
        items[day] += items_processed(summary, spec)
    waited: dict[date, list[int]] = defaultdict(list)
    for started_at, wait_ms in waits:
        waited[timezone.localdate(started_at)].append(wait_ms)
    trend = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        took, wait = sorted(durations[day]), sorted(waited[day])
        trend.append(
            TrendDay(
                day=day,
                runs=counted[day],
                duration_p50_ms=percentile(took, 0.50),
                duration_p95_ms=percentile(took, 0.95),
                wait_p50_ms=percentile(wait, 0.50),
                wait_p95_ms=percentile(wait, 0.95),
                items=items[day],
            )
        )
    return trend


@dataclasses.dataclass(frozen=True)
class TrendChart:
    title: str
    unit: str
    largest: int  # the top of the chart, in `unit`
    markup: SafeString
    empty: bool


def _bar(css: str, *, x: float, width: float, height: float, title: str) -> str:
    """One day's bar, at least 2 px high so a small value still shows."""
    height = round(max(2.0, height), 1)
    return (
        f'<rect class="{css}" x="{x}" y="{round(TREND_HEIGHT - height, 1)}" '
        f'width="{width}" height="{height}"><title>{escape(title)}</title></rect>'
    )


def _slots(count: int) -> tuple[float, float]:
    """The width each day takes across the chart, and its bar's width."""
    slot = TREND_WIDTH / max(count, 1)
    return slot, round(slot - 2, 1)


def trend_chart(
    trend: list[TrendDay], *, title: str, p50: str, p95: str | None = None, unit: str = "ms"
) -> TrendChart:
    """One bar a day of the `p50` field, the `p95` one (when given) as a paler bar behind it;
    days without a value are left blank. Built here for the reason `chart_markup` is."""
    values = [(getattr(day, p50), getattr(day, p95) if p95 else None) for day in trend]
    largest = max((value for pair in values for value in pair if value), default=0)
    scale = (TREND_HEIGHT - 2) / (largest or 1)
    slot, width = _slots(len(trend))
    shown = millis_text if unit == "ms" else (lambda value: f"{value:,} {unit}")
    parts = []
    for index, (day, (middle, high)) in enumerate(zip(trend, values, strict=True)):
        x = round(index * slot + 1, 1)
        label = day.day.isoformat()
        if high:
            parts.append(
                _bar(
                    "trend-p95",
                    x=x,
                    width=width,
                    height=high * scale,
                    title=f"{label}: p95 {shown(high)}",
                )
            )
        if middle:
            runs = f"{day.runs} run{'s' if day.runs != 1 else ''}"
            parts.append(
                _bar(
                    "trend-p50",
                    x=x,
                    width=width,
                    height=middle * scale,
                    title=f"{label}: {'p50 ' if p95 else ''}{shown(middle)}, {runs}",
                )
            )
    return TrendChart(
        title=title,
        unit=unit,
        largest=largest,
        markup=mark_safe("".join(parts)),  # numbers, and the texts escaped here
        empty=not largest,
    )


def job_trend_charts(trend: list[TrendDay]) -> list[TrendChart]:
    return [
        trend_chart(trend, title="Duration", p50="duration_p50_ms", p95="duration_p95_ms"),
        trend_chart(trend, title="Wait for a worker", p50="wait_p50_ms", p95="wait_p95_ms"),
        trend_chart(trend, title="Items processed", p50="items", unit="items"),
    ]


# --- A domain app's trends, on the dashboard's index page --------------------------------------


@dataclasses.dataclass(frozen=True)
class DomainTrendChart:
    """A `jobs.panels.Trend` drawn: one bar a day, its latest value and note as text; `error`
    instead when its function failed."""

    title: str
    markup: SafeString = mark_safe("")
    empty: bool = True
    latest: str = ""
    largest: str = ""
    first_day: date | None = None
    last_day: date | None = None
    note: str = ""
    error: str = ""


def domain_trend_chart(trend: Trend) -> DomainTrendChart:
    """The trend's days as bars (days with nothing recorded left blank), money with the
    currency; a trend of no values at all is `empty`."""
    shown = money_text if trend.money else (lambda value: f"{value:,}")
    recorded = [point for point in trend.points if point.value is not None]
    largest = max((abs(point.value) for point in recorded), default=0)
    scale = (TREND_HEIGHT - 2) / (largest or 1)
    slot, width = _slots(len(trend.points))
    parts = [
        _bar(
            "trend-p50",
            x=round(index * slot + 1, 1),
            width=width,
            height=abs(point.value) * scale,
            title=f"{point.day.isoformat()}: {shown(point.value)}",
        )
        for index, point in enumerate(trend.points)
        if point.value
    ]
    return DomainTrendChart(
        title=trend.title,
        markup=mark_safe("".join(parts)),  # numbers, and the texts escaped here
        empty=not recorded,
        latest=f"{shown(recorded[-1].value)} on {recorded[-1].day.isoformat()}" if recorded else "",
        largest=shown(largest),
        first_day=trend.points[0].day if trend.points else None,
        last_day=trend.points[-1].day if trend.points else None,
        note=trend.note,
    )


def domain_trend_charts(*, as_of: datetime) -> list[DomainTrendChart]:
    """Every STEWARD_DASHBOARD_TRENDS function's trend, drawn. One that fails is logged and
    shown as a short error in its place: a domain figure never takes the dashboard down."""
    charts = []
    for path in conf.DASHBOARD_TRENDS:
        try:
            trend = import_string(path)(as_of=as_of)
            charts.append(domain_trend_chart(trend))
        except Exception as exc:
            logger.exception("The dashboard trend %s could not be drawn", path)
            charts.append(
                DomainTrendChart(
                    title=path.rsplit(".", 1)[-1].replace("_", " ").capitalize(),
                    error=f"could not be drawn ({type(exc).__name__}); see the server log",
                )
            )
    return charts
