"""Cron specs: strict validation before periodiq sees them, the slots a spec produces, and
the spec in words for the common shapes (anything else is shown as the raw spec).

periodiq accepts out-of-range values such as minute 61 without a word, and never fires Sunday
written as `0`, `sun` or `@weekly` (its weekday check uses ISO numbers, where Sunday is 7).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pendulum
from django.conf import settings
from periodiq import CronSpec

from jobs.exceptions import CronError

FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 1, 7),
)
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
SUNDAY_HINT = "periodiq never fires Sunday written as 0, sun or @weekly: write Sunday as 7"
TERM = re.compile(r"^(\*|\d+(?:-\d+)?)(?:/(\d+))?$")
WEEKDAY_NAMES = re.compile(r"[a-z]", re.IGNORECASE)


def _validate_field(text: str, name: str, low: int, high: int) -> None:
    if name == "day of week" and WEEKDAY_NAMES.search(text):
        raise CronError(f"day of week {text!r} uses names; {SUNDAY_HINT}")
    for term in text.split(","):
        match = TERM.match(term)
        if not match:
            raise CronError(f"{name} {term!r} is not a number, range, * or step")
        base, step = match.groups()
        if step is not None and int(step) == 0:
            raise CronError(f"{name} step in {term!r} must be at least 1")
        if base == "*":
            continue
        bounds = [int(value) for value in base.split("-")]
        for value in bounds:
            if name == "day of week" and value == 0:
                raise CronError(f"day of week 0 in {term!r}: {SUNDAY_HINT}")
            if not low <= value <= high:
                raise CronError(f"{name} {value} in {term!r} is outside {low}-{high}")
        if len(bounds) == 2 and bounds[0] > bounds[1]:
            raise CronError(f"{name} range {term!r} runs backwards")


def validate_cron(spec: str) -> str:
    """Return the spec in five-field form, or raise CronError with a clear reason."""
    text = spec.strip()
    if text.lower() == "@weekly":
        raise CronError(f"@weekly means Sunday 0; {SUNDAY_HINT} (e.g. '0 0 * * 7')")
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            raise CronError(f"unknown alias {text!r}; use one of {', '.join(sorted(ALIASES))}")
        text = ALIASES[text.lower()]
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"{spec!r} has {len(fields)} fields; a cron spec has 5")
    for value, (name, low, high) in zip(fields, FIELDS, strict=True):
        _validate_field(value, name, low, high)
    CronSpec.parse(text)
    return text


def _local(moment: datetime) -> pendulum.DateTime:
    return pendulum.instance(moment).in_timezone(settings.TIME_ZONE)


def slots_between(spec: str, start: datetime, end: datetime) -> Iterator[datetime]:
    """Every slot the spec fires in (start, end], evaluated in TIME_ZONE like periodiq, in UTC."""
    cron = CronSpec.parse(validate_cron(spec))
    moment = _local(start)
    limit = _local(end)
    while True:
        moment = cron.next_valid_date(moment)
        if moment > limit:
            return
        if cron.validate(moment):
            yield _utc(moment)


def next_slots(spec: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` slots after `after`, in UTC."""
    found: list[datetime] = []
    window = timedelta(days=1)
    start = after
    while len(found) < count and window <= timedelta(days=800):
        found.extend(slots_between(spec, start, start + window))
        start, window = start + window, window * 2
    return found[:count]


def _utc(moment: datetime) -> datetime:
    return datetime.fromtimestamp(int(moment.timestamp()), tz=UTC)


def slot_of(scheduled_at: datetime) -> datetime:
    """A tick's slot: its scheduled time truncated to the minute, in UTC."""
    return _utc(scheduled_at).replace(second=0)


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
