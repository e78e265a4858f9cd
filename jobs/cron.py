"""Cron specs: strict validation with clear reasons, the slots a spec produces in a time zone,
and the spec in words for the common shapes (anything else is shown as the raw spec).

Slots come from cronsim, walking the schedule's own time zone from one firing to the next
(never minute by minute), with Debian cron's daylight-saving rules: a spec at a fixed time of
day fires once on both transition days (at the end of the skipped hour when its time is
skipped, at the first of the repeated times when it repeats), while a spec whose hour is a
wildcard follows the clock, so an hourly job runs every real hour.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from jobs.exceptions import CronError

FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MAX_SPEC_LENGTH = 100
TERM = re.compile(r"^(\*|\d+(?:-\d+)?)(?:/(\d+))?$")
NAMES = re.compile(r"[a-z]", re.IGNORECASE)
# `next_slots` looks this far ahead at most (a spec that never fires gives nothing).
LOOKAHEAD = timedelta(days=1_100)


def _validate_field(text: str, name: str, low: int, high: int) -> None:
    if name in {"month", "day of week"} and NAMES.search(text):
        return  # names (mon-fri, jan) are checked by cronsim itself
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
            if not low <= value <= high:
                raise CronError(f"{name} {value} in {term!r} is outside {low}-{high}")
        if len(bounds) == 2 and bounds[0] > bounds[1]:
            raise CronError(f"{name} range {term!r} runs backwards")


def validate_cron(spec: str) -> str:
    """Return the spec in five-field form, or raise CronError with a clear reason."""
    if not isinstance(spec, str) or not spec.strip():
        raise CronError("a cron spec is required, e.g. '0 9 * * *'")
    if len(spec) > MAX_SPEC_LENGTH:
        raise CronError(f"a cron spec is at most {MAX_SPEC_LENGTH} characters")
    text = " ".join(spec.split())
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            raise CronError(f"unknown alias {text!r}; use one of {', '.join(sorted(ALIASES))}")
        text = ALIASES[text.lower()]
    fields = text.split()
    if len(fields) != 5:
        raise CronError(f"{spec!r} has {len(fields)} fields; a cron spec has 5")
    for value, (name, low, high) in zip(fields, FIELDS, strict=True):
        _validate_field(value, name, low, high)
    try:
        CronSim(text, datetime(2000, 1, 1))
    except CronSimError as exc:
        if "day-of-month" in str(exc):  # every field is in range, so the date cannot occur
            raise CronError(
                f"day of month {fields[2]} never occurs in month {fields[3]}; {spec!r} never fires"
            ) from None
        raise CronError(f"{spec!r}: {str(exc).lower()}") from None
    return text


def validate_timezone(name: str) -> ZoneInfo:
    """The IANA time zone of that name, or CronError naming what is wrong."""
    if not isinstance(name, str) or not name or name not in _zone_names():
        raise CronError(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin'")
    return zone_of(name)


# ZoneInfo keeps only a handful of zones; the scheduler's tick reads dozens every minute.
zone_of = functools.cache(ZoneInfo)
# Specs are validated when they are written; searches read the normal form from here.
_normal_form = functools.lru_cache(maxsize=4_096)(validate_cron)


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _firings(spec: str, after: datetime, zone: ZoneInfo) -> Iterator[datetime]:
    """The instants (UTC, whole minutes) after `after` at which the spec fires in `zone`."""
    try:
        walk = CronSim(_normal_form(spec), _as_utc(after).astimezone(zone))
    except CronSimError:  # e.g. "0 0 31 2 *": no month has such a day
        return
    try:
        for firing in walk:
            yield firing.astimezone(UTC)
    except CronSimError:
        return


def slots_between(
    spec: str, start: datetime, end: datetime, zone: str = "UTC"
) -> Iterator[datetime]:
    """Every slot the spec fires at in (start, end], evaluated in `zone`, in UTC."""
    end = _as_utc(end)
    for slot in _firings(spec, start, zone_of(zone)):
        if slot > end:
            return
        yield slot


def latest_slot(spec: str, start: datetime, end: datetime, zone: str = "UTC") -> tuple:
    """The number of slots in (start, end] and the latest of them (None when there is none)."""
    count, latest = 0, None
    for slot in slots_between(spec, start, end, zone):
        count, latest = count + 1, slot
    return count, latest


def next_slot(spec: str, after: datetime, zone: str = "UTC") -> datetime:
    """The first slot after `after`'s minute; for a spec firing less often than LOOKAHEAD, the
    moment to look again."""
    found = next_slots(spec, after, 1, zone)
    return found[0] if found else slot_of(after) + LOOKAHEAD


def next_slots(spec: str, after: datetime, count: int, zone: str = "UTC") -> list[datetime]:
    """The next `count` slots after `after`, evaluated in `zone`, in UTC."""
    if count <= 0:
        return []
    # Slots fall on whole minutes, so every moment of a minute has the same next slots: the
    # answer is kept per minute (the dashboard asks for every schedule at every refresh).
    minute = _as_utc(after).replace(second=0, microsecond=0)
    return list(_next_slots(spec, minute, count, zone))


@functools.lru_cache(maxsize=4_096)
def _next_slots(spec: str, after: datetime, count: int, zone: str) -> tuple[datetime, ...]:
    found: list[datetime] = []
    for slot in _firings(spec, after, zone_of(zone)):
        if slot - after > LOOKAHEAD or len(found) == count:
            break
        found.append(slot)
    return tuple(found)


def slot_of(moment: datetime) -> datetime:
    """The minute a moment falls in, in UTC."""
    return datetime.fromtimestamp(int(_as_utc(moment).timestamp()), tz=UTC).replace(second=0)


DAY_NAMES = {
    0: "Sundays",
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
    return f"{_join(list(dict.fromkeys(DAY_NAMES[value] for value in days)))} at {times}"


def _monthly(spec: str, minute: str, hour: str, day: str, month: str, weekday: str) -> str:
    minutes, hours, days = _numbers(minute), _numbers(hour), _numbers(day)
    if month != "*" or weekday != "*" or not (minutes and hours and days):
        return spec
    if len(minutes) != 1 or len(hours) != 1:
        return spec
    on_days = _join([str(value) for value in days])
    return f"on day {on_days} of every month at {hours[0]:02d}:{minutes[0]:02d}"
