"""The schedules' serializers: a schedule's fields as an operator sets them, and a schedule
with its next runs, last run, missed slots and audit."""

from __future__ import annotations

from datetime import UTC

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.api.serializers.common import (
    JOB_NAMES,
    JsonIntegerField,
    ParamsField,
    QuerySerializer,
    ReasonField,
    StrictBooleanField,
    StrictCharField,
    StrictSerializer,
    envelope,
    job_filter,
)
from jobs.cron import MAX_SPEC_LENGTH
from jobs.models import RunStatus, Schedule, ScheduleChange, Trigger
from jobs.schedules import (
    MAX_NAME_LENGTH,
    MAX_NOTES_LENGTH,
    MAX_RETRIES_LIMIT,
    MIN_BACKOFF_RANGE,
    NAME,
)


@extend_schema_field({"type": "string", "pattern": NAME.pattern})
class ScheduleNameField(StrictCharField):
    """Kept as written: the schedule services check the name's form and that it is free."""

    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_NAME_LENGTH, trim_whitespace=False, **kwargs)


@extend_schema_field({"type": "string", "enum": JOB_NAMES})
class JobNameField(StrictCharField):
    """A job's name; the schedule services refuse one nobody registered."""


# Formats JSON Schema does not define: the descriptions say what they take and the server
# checks them.
@extend_schema_field({"type": "string", "format": "cron", "example": "0 9 * * 1-5"})
class CronField(StrictCharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_SPEC_LENGTH, trim_whitespace=False, **kwargs)


@extend_schema_field({"type": "string", "format": "iana-time-zone", "example": "Asia/Tokyo"})
class TimeZoneField(StrictCharField):
    def __init__(self, **kwargs):
        max_length = Schedule._meta.get_field("timezone").max_length
        super().__init__(max_length=max_length, trim_whitespace=False, **kwargs)


# Not empty: drf-spectacular offers the empty string as the other choice of a oneOf, which
# must match exactly one.
@extend_schema_field({"type": "string", "pattern": r"^[^\u0000]+$"})
class NotesField(StrictCharField):
    def __init__(self, **kwargs):
        super().__init__(
            max_length=MAX_NOTES_LENGTH, allow_blank=True, trim_whitespace=False, **kwargs
        )


class LocalDateTimeField(serializers.DateTimeField):
    """A time shown with the offset it carries (a schedule's own time zone), where DRF would
    move it to TIME_ZONE."""

    def enforce_timezone(self, value):
        return value


# --- Inputs -----------------------------------------------------------------------------------


class ScheduleListQuerySerializer(QuerySerializer):
    job = job_filter("Only the schedules of this job.")


class OptionalReasonInputSerializer(StrictSerializer):
    reason = ReasonField(required=False, help_text="Why: recorded in the schedule's audit.")


class OptionalReasonQuerySerializer(QuerySerializer):
    reason = ReasonField(required=False, help_text="Why: recorded in the schedule's audit.")


class ScheduleInputSerializer(OptionalReasonInputSerializer):
    """A schedule's fields as an operator sets them, checked here for type and length only:
    the schedule services check the rest (a known job, a valid cron and time zone, the job's
    params, a free name) and name every field at fault."""

    name = ScheduleNameField(
        help_text=f"Unique; up to {MAX_NAME_LENGTH} letters, digits, '_', '.', ':' or '-', "
        "e.g. pools-snake-tokyo."
    )
    job = JobNameField(help_text="The job the schedule runs.")
    cron = CronField(
        help_text="Five cron fields (or @hourly, @daily, @weekly, ...), read in `timezone`; "
        "Sunday is 0 or 7, month and day names are allowed."
    )
    timezone = TimeZoneField(
        required=False, help_text="The IANA time zone the cron is read in; default UTC."
    )
    params = ParamsField(
        required=False,
        help_text="The job's parameters for every run of the schedule (its `params` in the "
        "job list say which it takes); default none.",
    )
    enabled = StrictBooleanField(
        required=False, help_text="false: its slots are recorded skipped; default true."
    )
    catch_up = StrictBooleanField(
        required=False,
        help_text="Run the latest missed slot once when the scheduler comes back; default: "
        "the job's own policy.",
    )
    max_retries = JsonIntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=MAX_RETRIES_LIMIT,
        help_text="Retries of its runs; null: the job's.",
    )
    min_backoff_ms = JsonIntegerField(
        required=False,
        allow_null=True,
        min_value=MIN_BACKOFF_RANGE[0],
        max_value=MIN_BACKOFF_RANGE[1],
        help_text="The first retry's backoff, doubling after; null: the job's.",
    )
    notes = NotesField(required=False)


# --- Outputs ----------------------------------------------------------------------------------


class ScheduleRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class RunBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    trigger = serializers.ChoiceField(choices=Trigger.choices)
    slot = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class NextRunSerializer(serializers.Serializer):
    utc = serializers.DateTimeField(default_timezone=UTC)
    local = LocalDateTimeField(help_text="The same time in the schedule's time zone.")


class ScheduleSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="schedule.id")
    name = serializers.CharField(source="schedule.name")
    job = serializers.CharField(source="schedule.job")
    cron = serializers.CharField(source="schedule.cron")
    in_words = serializers.CharField(help_text="The cron spec in words, in its time zone.")
    timezone = serializers.CharField(source="schedule.timezone")
    params = serializers.DictField(source="schedule.params")
    enabled = serializers.BooleanField(source="schedule.enabled")
    catch_up = serializers.BooleanField(source="schedule.catch_up")
    max_retries = serializers.IntegerField(source="schedule.max_retries", allow_null=True)
    min_backoff_ms = serializers.IntegerField(source="schedule.min_backoff_ms", allow_null=True)
    notes = serializers.CharField(source="schedule.notes")
    paused_reason = serializers.CharField(
        help_text="Why its slots are recorded skipped (the schedule or its job is paused); "
        "empty while it runs."
    )
    next_runs = NextRunSerializer(many=True, help_text="Its next 3 run times.")
    last_run = RunBriefSerializer(allow_null=True, help_text="Its latest recorded run.")
    created_by = serializers.CharField(source="schedule.created_by")
    created_at = serializers.DateTimeField(source="schedule.created_at")
    updated_by = serializers.CharField(source="schedule.updated_by")
    updated_at = serializers.DateTimeField(source="schedule.updated_at")


class MissedSlotsSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    latest = serializers.ListField(
        child=serializers.DateTimeField(), help_text="The latest of them, newest last."
    )


class ScheduleChangeSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=ScheduleChange.Action.choices)
    changed_by = serializers.CharField()
    changed_at = serializers.DateTimeField()
    reason = serializers.CharField()
    before = serializers.DictField(
        allow_null=True, help_text="The changed fields before; null when it was created."
    )
    after = serializers.DictField(
        allow_null=True, help_text="The changed fields after; null when it was removed."
    )


class ScheduleDetailSerializer(ScheduleSerializer):
    missed_slots = MissedSlotsSerializer(
        help_text="Slots of the missed-slot window with no recorded run."
    )
    changes = ScheduleChangeSerializer(many=True, help_text="Its audit, newest first.")


# --- Envelopes --------------------------------------------------------------------------------


ScheduleListResponse = envelope("ScheduleListResponse", ScheduleSerializer(many=True))
ScheduleDetailResponse = envelope("ScheduleDetailResponse", ScheduleDetailSerializer())
ScheduleWriteResponse = envelope("ScheduleWriteResponse", ScheduleDetailSerializer(), message=True)
ScheduleRemoveResponse = envelope("ScheduleRemoveResponse", ScheduleRefSerializer(), message=True)
