"""Cron specs in words, for the common shapes; anything else is shown as the raw spec."""

from __future__ import annotations

import re

from jobs.cron import CronError, validate_cron

DAY_NAMES = {
    1: "Mondays",
    2: "Tuesdays",
    3: "Wednesdays",
    4: "Thursdays",
    5: "Fridays",
    6: "Saturdays",
    7: "Sundays",
}
NUMBER = re.compile(r"^\d+$")
STEP = re.compile(r"^\*/(\d+)$")


def _numbers(field: str) -> list[int] | None:
    terms = field.split(",")
    if all(NUMBER.match(term) for term in terms):
        return [int(term) for term in terms]
    return None


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _plural(count: int, unit: str) -> str:
    return f"every {unit}" if count == 1 else f"every {count} {unit}s"


def cron_in_words(spec: str) -> str:
    """E.g. "every hour at :00", "every day at 09:00", "Mondays at 00:00", "every 5 minutes"."""
    try:
        minute, hour, day, month, weekday = validate_cron(spec).split()
    except CronError:
        return spec
    if (day, month) != ("*", "*"):
        return _monthly(spec, minute, hour, day, month, weekday)
    if minute == "*" and hour == "*" and weekday == "*":
        return "every minute"
    if (step := STEP.match(minute)) and hour == "*" and weekday == "*":
        return _plural(int(step.group(1)), "minute")
    minutes = _numbers(minute)
    if minutes is None or len(minutes) != 1:
        return spec
    at_minute = f":{minutes[0]:02d}"
    if hour == "*" and weekday == "*":
        return f"every hour at {at_minute}"
    if (step := STEP.match(hour)) and weekday == "*":
        every = _plural(int(step.group(1)), "hour")
        return every if minutes[0] == 0 else f"{every} at {at_minute}"
    hours = _numbers(hour)
    if hours is None:
        return spec
    times = _join([f"{value:02d}{at_minute}" for value in hours])
    if weekday == "*":
        return f"every day at {times}"
    days = _numbers(weekday)
    if days is None:
        return spec
    return f"{_join([DAY_NAMES[value] for value in days])} at {times}"


def _monthly(spec: str, minute: str, hour: str, day: str, month: str, weekday: str) -> str:
    minutes, hours, days = _numbers(minute), _numbers(hour), _numbers(day)
    if month != "*" or weekday != "*" or not (minutes and hours and days):
        return spec
    if len(minutes) != 1 or len(hours) != 1:
        return spec
    on_days = _join([str(value) for value in days])
    return f"on day {on_days} of every month at {hours[0]:02d}:{minutes[0]:02d}"
