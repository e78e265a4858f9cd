"""Schedules as rows: every write to them, validated once for every surface and audited.

Each change (create, update, pause, resume, remove) is one transaction that also writes a
`ScheduleChange` with who, when, why, and the fields before and after. The scheduler's next
minute tick obeys it; nothing restarts.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.cron import next_slot, validate_cron, validate_timezone
from jobs.exceptions import CronError, InvalidInput, NotFoundError, StewardError
from jobs.models import Schedule, ScheduleChange
from jobs.params import params_validate
from jobs.registry import all_jobs, get_job

logger = logging.getLogger("steward.schedule")

# The fields an operator sets; the rest are the record's own.
EDITABLE_FIELDS = (
    "name",
    "job",
    "cron",
    "timezone",
    "params",
    "enabled",
    "catch_up",
    "max_retries",
    "min_backoff_ms",
    "notes",
)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
MAX_NAME_LENGTH = 100
MAX_NOTES_LENGTH = 2_000
MAX_RETRIES_LIMIT = 20
MIN_BACKOFF_RANGE = (100, 24 * 3600 * 1000)
MIGRATE = "migrate"


class ScheduleNotFound(NotFoundError, LookupError):
    def __init__(self, ref: Any) -> None:
        super().__init__(f"no schedule {ref!r}")


def schedule_get(ref: int | str) -> Schedule:
    """A schedule by id or by name."""
    found = None
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        found = Schedule.objects.filter(pk=int(ref)).first()
    if found is None and isinstance(ref, str):
        found = Schedule.objects.filter(name=ref).first()
    if found is None:
        raise ScheduleNotFound(ref)
    return found


def schedule_fields(schedule: Schedule) -> dict:
    """The operator's fields of a schedule, as the audit keeps them."""
    return {field: getattr(schedule, field) for field in EDITABLE_FIELDS}


def _validated(fields: dict, *, current: Schedule | None) -> dict:
    """The fields checked together; InvalidInput naming every field at fault."""
    errors: dict[str, list[str]] = {}
    name = fields.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        errors["name"] = [
            f"a name of at most {MAX_NAME_LENGTH} letters, digits, '_', '.', ':' or '-' is required"
        ]
    elif Schedule.objects.filter(name=name).exclude(pk=getattr(current, "pk", None)).exists():
        errors["name"] = [f"a schedule named {name!r} exists already"]
    spec = None
    try:
        spec = get_job(fields.get("job") or "")
    except StewardError as exc:
        errors["job"] = [str(exc)]
    for field, check in (("cron", validate_cron), ("timezone", validate_timezone)):
        try:
            value = check(fields.get(field))
            if field == "cron":
                fields["cron"] = value
        except CronError as exc:
            errors[field] = [str(exc)]
    if spec is not None:
        try:
            fields["params"] = params_validate(spec, fields.get("params"))
        except InvalidInput as exc:
            errors.update(exc.fields)
    for field in ("enabled", "catch_up"):
        if not isinstance(fields.get(field), bool):
            errors[field] = ["must be true or false"]
    _check_number(fields, "max_retries", (0, MAX_RETRIES_LIMIT), errors)
    _check_number(fields, "min_backoff_ms", MIN_BACKOFF_RANGE, errors)
    notes = fields.get("notes")
    if not isinstance(notes, str) or len(notes) > MAX_NOTES_LENGTH:
        errors["notes"] = [f"text of at most {MAX_NOTES_LENGTH:,} characters"]
    if errors:
        raise InvalidInput(errors)
    return fields


def _check_number(fields: dict, field: str, bounds: tuple[int, int], errors: dict) -> None:
    value = fields.get(field)
    if value is None:
        return
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors[field] = [f"a whole number from {low:,} to {high:,}, or empty for the job's own"]


def _audit(
    schedule: Schedule, *, action: str, by: str, reason: str, before: dict | None
) -> ScheduleChange:
    after = None if action == ScheduleChange.Action.REMOVED else schedule_fields(schedule)
    if before is not None and after is not None:
        changed = {field for field in EDITABLE_FIELDS if before[field] != after[field]}
        before = {field: before[field] for field in sorted(changed)}
        after = {field: after[field] for field in sorted(changed)}
    change = ScheduleChange.objects.create(
        schedule=None if action == ScheduleChange.Action.REMOVED else schedule,
        schedule_name=schedule.name,
        job=schedule.job,
        action=action,
        changed_by=by,
        reason=reason,
        before=before,
        after=after,
    )
    # The defaults made on migrate are routine; an operator's change is worth a warning.
    logger.log(
        logging.INFO if by == MIGRATE else logging.WARNING,
        "Schedule %s %s by %s%s",
        schedule.name,
        action,
        by or "an operator",
        _why(reason),
    )
    return change


def _why(reason: str) -> str:
    return f": {reason}" if reason else ""


@transaction.atomic
def schedule_create(*, by: str, reason: str = "", **fields: Any) -> Schedule:
    """A new schedule; `catch_up` defaults to its job's, `timezone` to UTC."""
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
    if unknown:
        raise InvalidInput({field: ["not a schedule field"] for field in unknown})
    job = fields.get("job")
    defaults = {"timezone": "UTC", "params": {}, "enabled": True, "notes": ""}
    try:
        defaults["catch_up"] = get_job(job or "").catch_up
    except StewardError:
        defaults["catch_up"] = False
    values = _validated({**defaults, **fields}, current=None)
    schedule = Schedule(**values, created_by=by, updated_by=by, next_slot=_first_slot(values))
    try:
        with transaction.atomic():
            schedule.save()
    except IntegrityError:
        raise InvalidInput(
            {"name": [f"a schedule named {values['name']!r} exists already"]}
        ) from None
    _audit(schedule, action=ScheduleChange.Action.CREATED, by=by, reason=reason, before=None)
    return schedule


@transaction.atomic
def schedule_update(*, schedule: Schedule | int | str, by: str, reason: str = "", **changes):
    """Change some of a schedule's fields; they take effect from the next minute on."""
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise InvalidInput({field: ["not a schedule field"] for field in unknown})
    locked = _locked(schedule)
    before = schedule_fields(locked)
    values = _validated({**before, **changes}, current=locked)
    if values == before:
        return locked
    for field, value in values.items():
        setattr(locked, field, value)
    if (values["cron"], values["timezone"]) != (before["cron"], before["timezone"]):
        locked.next_slot = _first_slot(values)
    locked.updated_by = by
    try:
        with transaction.atomic():
            locked.save()
    except IntegrityError:
        raise InvalidInput(
            {"name": [f"a schedule named {values['name']!r} exists already"]}
        ) from None
    changed = {field for field in values if values[field] != before[field]}
    action = ScheduleChange.Action.UPDATED
    if changed == {"enabled"}:
        action = (
            ScheduleChange.Action.RESUMED if values["enabled"] else ScheduleChange.Action.PAUSED
        )
    _audit(locked, action=action, by=by, reason=reason, before=before)
    return locked


def _first_slot(values: dict) -> datetime:
    """A new or re-timed schedule's first slot: the first after the current minute."""
    return next_slot(values["cron"], timezone.now(), values["timezone"])


def schedule_pause(*, schedule: Schedule | int | str, by: str, reason: str = "") -> Schedule:
    """Pause one schedule: its slots are recorded skipped until it is resumed."""
    return schedule_update(schedule=schedule, by=by, reason=reason, enabled=False)


def schedule_resume(*, schedule: Schedule | int | str, by: str, reason: str = "") -> Schedule:
    return schedule_update(schedule=schedule, by=by, reason=reason, enabled=True)


@transaction.atomic
def schedule_remove(*, schedule: Schedule | int | str, by: str, reason: str = "") -> None:
    """Delete a schedule; its runs and its audit stay, naming it."""
    locked = _locked(schedule)
    _audit(
        locked,
        action=ScheduleChange.Action.REMOVED,
        by=by,
        reason=reason,
        before=schedule_fields(locked),
    )
    ScheduleChange.objects.filter(schedule=locked).update(schedule=None)
    locked.delete()


def _locked(schedule: Schedule | int | str) -> Schedule:
    pk = schedule.pk if isinstance(schedule, Schedule) else schedule_get(schedule).pk
    found = Schedule.objects.select_for_update().filter(pk=pk).first()
    if found is None:
        raise ScheduleNotFound(schedule if not isinstance(schedule, Schedule) else pk)
    return found


@transaction.atomic
def schedules_ensure_defaults() -> list[Schedule]:
    """Create each job's default schedule (its registered cron, with any STEWARD_JOB_<NAME>_CRON
    override, in TIME_ZONE) unless the job ever had a schedule: after that the rows are the
    truth, and a removed default stays removed."""
    had_one = set(ScheduleChange.objects.values_list("job", flat=True).distinct())
    had_one |= set(Schedule.objects.values_list("job", flat=True).distinct())
    created = []
    for spec in all_jobs():
        if not spec.cron or spec.name in had_one:
            continue
        created.append(
            schedule_create(
                by=MIGRATE,
                reason="the job's default schedule",
                name=spec.name,
                job=spec.name,
                cron=spec.cron,
                timezone=settings.TIME_ZONE,
            )
        )
    return created
