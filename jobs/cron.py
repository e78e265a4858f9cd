"""Cron specs: strict validation before periodiq sees them, the slots a spec produces, and
the spec in words for the common shapes (anything else is shown as the raw spec).

periodiq accepts out-of-range values such as minute 61 without a word, and never fires Sunday
written as `0`, `sun` or `@weekly` (its weekday check uses ISO numbers, where Sunday is 7).

Slots come from cronsim, walking the wall clock of TIME_ZONE from one firing to the next (not
minute by minute), each confirmed by periodiq's own check: a slot is a minute at which
periodiq, waking every minute and reading the clock, would fire the job. An hour the clock
skips has no slots; an hour it repeats has them twice.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError
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


# A wall-clock time at most this much earlier than a moment's can still come after it: a
# clock set back (no zone sets it back by more than two hours).
SET_BACK_HORIZON = timedelta(hours=3)
SET_BACK_PROBES = 6
# `next_slots` looks this far ahead at most (a spec that never fires gives nothing).
LOOKAHEAD = timedelta(days=1_100)


@dataclasses.dataclass(frozen=True)
class _Compiled:
    """A valid spec as periodiq reads it, and the expression cronsim walks: a superset of
    periodiq's matches, each of which `periodiq.validate` then confirms."""

    periodiq: CronSpec
    expression: str | None  # None: the spec never fires


def _listed(values: list[int], size: int) -> str:
    return "*" if len(values) >= size else ",".join(str(value) for value in values)


@functools.lru_cache(maxsize=512)
def _compile(spec: str) -> _Compiled:
    """Each field as periodiq expands it (so `5/10` is minute 5 alone, as periodiq reads it),
    written `*` when it allows every value and as a list otherwise.

    periodiq matches the day of month OR the day of week when both are restricted (fewer than
    31 days, fewer than 7 weekdays), else both; cronsim ORs them unless one starts with `*`,
    so a field periodiq deems unrestricted is written `*`. periodiq compares the day of week
    with ISO numbers, so a 0 that `*` or a step expands to never matches and is dropped."""
    cron = CronSpec.parse(validate_cron(spec))
    weekdays = [value for value in cron.dow if 1 <= value <= 7]
    either = cron.is_dom_restricted and cron.is_dow_restricted
    if not weekdays and not either:
        return _Compiled(cron, None)
    day = _listed(cron.dom, 31) if cron.is_dom_restricted else "*"
    weekday = "*" if not weekdays or len(weekdays) == 7 else ",".join(map(str, weekdays))
    expression = " ".join(
        [_listed(cron.minute, 60), _listed(cron.hour, 24), day, _listed(cron.month, 12), weekday]
    )
    return _Compiled(cron, expression)


def _zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _walls(spec: str, after: datetime) -> Iterator[datetime]:
    """The wall-clock minutes (naive) after `after` (naive) that the spec fires at."""
    compiled = _compile(spec)
    if compiled.expression is None:
        return
    try:
        walls = CronSim(compiled.expression, after)
    except CronSimError:  # e.g. "0 0 31 2 *": no month has such a day
        return
    for wall in walls:
        if compiled.periodiq.validate(wall):
            yield wall


def _instants(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """The instants (UTC) whose clock in `zone` reads `wall`: none in the hour a clock skips,
    two in the hour it repeats, as periodiq, which wakes every minute and reads the clock."""
    if zone.key == "UTC":
        return [wall.replace(tzinfo=UTC)]
    found: list[datetime] = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == wall and instant not in found:
            found.append(instant)
    return found


def _search_start(moment: datetime, zone: ZoneInfo) -> datetime:
    """The wall clock (naive) to search from for slots after `moment`: its own, less what
    the clock is set back by in the next hours (the repeated wall times come later)."""
    local = moment.astimezone(zone)
    offset = local.utcoffset()
    later = min(
        (moment + SET_BACK_HORIZON * step / SET_BACK_PROBES).astimezone(zone).utcoffset()
        for step in range(1, SET_BACK_PROBES + 1)
    )
    return local.replace(tzinfo=None) - max(timedelta(0), offset - later)


def slots_between(spec: str, start: datetime, end: datetime) -> Iterator[datetime]:
    """Every slot the spec fires in (start, end], evaluated in TIME_ZONE like periodiq, in UTC."""
    zone = _zone()
    start, end = _as_utc(start), _as_utc(end)
    found: list[datetime] = []
    for wall in _walls(spec, _search_start(start, zone)):
        instants = _instants(wall, zone)
        if not instants:
            continue
        # The earliest instant of each later wall time is later still: past `end`, stop.
        if instants[0] > end:
            break
        found.extend(instant for instant in instants if start < instant <= end)
    yield from sorted(found)


def next_slots(spec: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` slots after `after`, in UTC."""
    if count <= 0:
        return []
    after = _as_utc(after)
    # Slots fall on whole minutes, so every moment of a minute has the same next slots: the
    # answer is kept per minute (the dashboard asks for every job at every refresh).
    minute = after.replace(second=0, microsecond=0)
    return list(_next_slots(spec, minute, count, settings.TIME_ZONE))


@functools.lru_cache(maxsize=1_024)
def _next_slots(spec: str, after: datetime, count: int, zone_name: str) -> tuple[datetime, ...]:
    zone = ZoneInfo(zone_name)
    origin = _search_start(after, zone)
    found: list[datetime] = []
    for wall in _walls(spec, origin):
        if wall - origin > LOOKAHEAD:
            break
        instants = _instants(wall, zone)
        if not instants:
            continue
        if len(found) >= count and instants[0] > sorted(found)[count - 1]:
            break
        found.extend(instant for instant in instants if instant > after)
    return tuple(sorted(found)[:count])


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
