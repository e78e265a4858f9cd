"""Cron specs: strict validation before periodiq sees them, and the slots a spec produces.

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


class CronError(ValueError):
    pass


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
