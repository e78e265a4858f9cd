"""Calendar periods of the arcade, in UTC: days, and ISO weeks starting on Monday."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from leaderboard.models import PoolPeriod

PERIOD_LENGTH = {PoolPeriod.DAILY: timedelta(days=1), PoolPeriod.WEEKLY: timedelta(days=7)}


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def period_start(period: str, moment: datetime) -> date:
    """The first day of the period that contains `moment`."""
    day = utc_day(moment)
    if period == PoolPeriod.WEEKLY:
        return day - timedelta(days=day.weekday())
    return day


def period_bounds(period: str, start: date) -> tuple[datetime, datetime]:
    """[start, end) of the period beginning on `start`, as UTC datetimes."""
    begin = datetime.combine(start, time.min, tzinfo=UTC)
    return begin, begin + PERIOD_LENGTH[PoolPeriod(period)]


def latest_ended_start(period: str, moment: datetime) -> date:
    """The last period start whose period has ended by `moment`."""
    return utc_day(moment) - PERIOD_LENGTH[PoolPeriod(period)]


def iso_week_label(moment: datetime) -> str:
    year, week, _ = utc_day(moment).isocalendar()
    return f"{year}-W{week:02d}"
