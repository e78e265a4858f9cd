"""Input and output serializers of the jobs API.

Inputs are strict: unknown fields, wrong JSON types, out-of-range numbers and times, blank or
overlong text are refused with a message on the field, and the schema says so. Outputs are
wrapped in the seeds' envelope `{"success": true, "data"}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.settings import ISO_8601

from jobs.conf import conf
from jobs.cron import MAX_SPEC_LENGTH
from jobs.models import RunStatus, Schedule, ScheduleChange, Trigger
from jobs.params import params_describe
from jobs.registry import all_jobs, get_job
from jobs.schedules import (
    MAX_NAME_LENGTH,
    MAX_NOTES_LENGTH,
    MAX_RETRIES_LIMIT,
    MIN_BACKOFF_RANGE,
    NAME,
)

# A run may not handle work due in the future: that would release money early. Dry runs may
# look ahead, and a little clock skew between client and server is forgiven.
AS_OF_SKEW = timedelta(minutes=5)
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
INTEGER = re.compile(r"^-?\d+$")
REASON_MAX_LENGTH = 500
# What ReasonField takes, for the schema: something besides spaces, and no NUL (which a
# PostgreSQL text column cannot hold).
REASON_PATTERN = r"^[^\u0000]*[^\u0000\s][^\u0000]*$"


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo never silently does the default."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Unknown field."] for name in unknown}, code="unknown_field"
                )
        return super().to_internal_value(data)


class StrictSerializerSchema(OpenApiSerializerExtension):
    """The schema of a StrictSerializer says what it enforces: no properties but its own."""

    target_class = StrictSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        return {**schema, "additionalProperties": False}


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only; DRF would also take "yes", "on" or 1."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictCharField(serializers.CharField):
    """A JSON string only; DRF would turn a number into text."""

    default_error_messages = {"invalid": "Not a valid string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """Digits only, so "1.5", "1.0" and "1e2" are refused rather than rounded."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not INTEGER.match(str(data).strip()):
            self.fail("invalid")
        return super().to_internal_value(data)


class JsonIntegerField(StrictIntegerField):
    """A JSON number without a fraction only: in a body, "3" is text, not a count."""

    def to_internal_value(self, data):
        if not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "pattern": REASON_PATTERN})
class ReasonField(StrictCharField):
    """Kept as written (not trimmed, so the length the schema states is the one checked)."""

    def __init__(self, **kwargs):
        super().__init__(max_length=REASON_MAX_LENGTH, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not value.strip():
            self.fail("blank")
        return value


class ParamsField(serializers.DictField):
    """A JSON object of parameter names to values. Which names and values a job takes is its
    own to say (`jobs.params`): the service checks them and names each one at fault."""

    default_error_messages = {"not_a_dict": "Must be an object of parameter names to values."}


@extend_schema_field({"type": "string", "pattern": NAME.pattern})
class ScheduleNameField(StrictCharField):
    """Kept as written: the schedule services check the name's form and that it is free."""

    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_NAME_LENGTH, trim_whitespace=False, **kwargs)


JOB_NAMES = [spec.name for spec in all_jobs()]


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


def _is_a_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


class IsoDateTimeField(serializers.DateTimeField):
    """An ISO-8601 time within AS_OF_WINDOW_DAYS of now. A date alone is refused rather than
    read as midnight; a time further off (9999-12-31) would overflow a job's date arithmetic."""

    default_error_messages = {
        "invalid": "Not an ISO-8601 time; use e.g. 2026-03-01T12:00:00Z.",
        "date": "Not an ISO-8601 time; a date needs a time too, e.g. 2026-03-01T00:00:00Z.",
        "window": "Must be within {days} days of now.",
    }

    def __init__(self, **kwargs):
        super().__init__(input_formats=[ISO_8601], **kwargs)

    def to_internal_value(self, value):
        if isinstance(value, str) and _is_a_date(value):
            self.fail("date")
        moment = super().to_internal_value(value)
        days = conf.AS_OF_WINDOW_DAYS
        if abs(moment - timezone.now()) > timedelta(days=days):
            self.fail("window", days=days)
        return moment


def idempotency_key_or_none(value: str | None) -> str | None:
    if value is None:
        return None
    if not IDEMPOTENCY_KEY.match(value):
        raise serializers.ValidationError(
            {"Idempotency-Key": ["Use 1 to 255 printable ASCII characters without spaces."]}
        )
    return value


# --- Inputs -----------------------------------------------------------------------------------


class QuerySerializer(StrictSerializer):
    """Parameters of a query string."""

    def to_internal_value(self, data):
        # Query strings repeat keys in a QueryDict: the last value wins, as in Django.
        if hasattr(data, "dict"):
            data = data.dict()
        return super().to_internal_value(data)


class ReasonInputSerializer(StrictSerializer):
    reason = ReasonField(help_text="Why: recorded with who asked.")


class TriggerInputSerializer(ReasonInputSerializer):
    dry_run = StrictBooleanField(
        default=False, help_text="Report what the job would change without changing it."
    )
    params = ParamsField(
        required=False,
        help_text="The job's parameters (its `params` in the job list say which it takes), "
        'e.g. {"escrow_ids": [4, 9]}; an unknown or ill-typed one is a 400 on '
        "`params.<name>` and nothing is recorded. Part of the Idempotency-Key's request.",
    )
    as_of = IsoDateTimeField(
        required=False,
        help_text="Handle what is due as of this ISO-8601 time (default: now), within "
        f"{conf.AS_OF_WINDOW_DAYS} days of now. Only a dry run may look into the future.",
    )

    def validate(self, attrs):
        as_of = attrs.get("as_of")
        if as_of and not attrs["dry_run"] and as_of > timezone.now() + AS_OF_SKEW:
            raise serializers.ValidationError(
                {"as_of": ["Only a dry run may handle work due in the future."]}
            )
        return attrs


def _job_filter(help_text: str) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=JOB_NAMES,
        required=False,
        help_text=help_text,
        error_messages={"invalid_choice": f"Unknown job; known jobs: {', '.join(JOB_NAMES)}."},
    )


class RunListQuerySerializer(QuerySerializer):
    job = _job_filter("Only runs of this job.")
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    trigger = serializers.ChoiceField(choices=Trigger.choices, required=False)
    since = IsoDateTimeField(
        required=False,
        help_text="Only runs recorded at or after this time, within "
        f"{conf.AS_OF_WINDOW_DAYS} days of now.",
    )
    schedule = StrictIntegerField(
        min_value=1, max_value=2**63 - 1, required=False, help_text="Only runs of this schedule."
    )
    limit = StrictIntegerField(min_value=1, max_value=100, default=20)


class ScheduleListQuerySerializer(QuerySerializer):
    job = _job_filter("Only the schedules of this job.")


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


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    worker = serializers.CharField()
    message_id = serializers.CharField()
    error = serializers.CharField()
    traceback = serializers.CharField()


class RepairSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    what = serializers.CharField()


class ScheduleRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class RunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    job = serializers.CharField()
    params = serializers.DictField(help_text="The run's validated parameters; {} for none.")
    schedule = ScheduleRefSerializer(
        allow_null=True, help_text="The schedule whose slot the run is; null when removed or none."
    )
    status = serializers.ChoiceField(choices=RunStatus.choices)
    status_reason = serializers.CharField()
    trigger = serializers.ChoiceField(choices=Trigger.choices)
    requested_by = serializers.CharField()
    reason = serializers.CharField()
    dry_run = serializers.BooleanField()
    as_of = serializers.DateTimeField()
    slot = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    attempt_count = serializers.IntegerField()
    summary = serializers.JSONField(help_text="Counts and amounts the job reported.")
    error = serializers.CharField()
    retry_of = serializers.IntegerField(source="retry_of_id", allow_null=True)
    parent = serializers.IntegerField(
        source="parent_id", allow_null=True, help_text="The fanned-out run this shard is of."
    )
    message_id = serializers.CharField()
    code_version = serializers.CharField()


class RunDetailSerializer(RunSerializer):
    traceback = serializers.CharField()
    attempts = AttemptSerializer(many=True, source="attempts.all")
    repairs = RepairSerializer(
        many=True, help_text="What rescue_runs did to the run: re-sent, taken back, closed."
    )


class JobStateSerializer(serializers.Serializer):
    job = serializers.CharField()
    state = serializers.SerializerMethodField()
    changed_by = serializers.CharField()
    change_reason = serializers.CharField()
    changed_at = serializers.DateTimeField(allow_null=True)

    def get_state(self, state) -> str:
        return "paused" if state.paused else "enabled"


class JobStatsSerializer(serializers.Serializer):
    sample_size = serializers.IntegerField(
        help_text="Latest finished runs looked at (up to 200; dry runs left out)."
    )
    succeeded = serializers.IntegerField()
    partial = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    success_rate = serializers.FloatField(
        allow_null=True,
        help_text="Percent: succeeded / (succeeded + partial + failed); skipped runs did no "
        "work and are left out.",
    )
    p50_ms = serializers.IntegerField(allow_null=True)
    p95_ms = serializers.IntegerField(allow_null=True)


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


class ParamSpecSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField(help_text='E.g. "integer", "list of integer", "choice".')
    help = serializers.CharField()
    required = serializers.BooleanField()
    default = serializers.JSONField(required=False)
    choices = serializers.ListField(child=serializers.JSONField(), required=False)


class JobSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    params = serializers.SerializerMethodField(help_text="The parameters a run accepts.")
    time_zone = serializers.SerializerMethodField(help_text="The zone `next_runs` are given in.")
    queue = serializers.CharField()
    next_runs = serializers.ListField(
        child=serializers.DateTimeField(),
        help_text="The next 3 run times over its running schedules, in TIME_ZONE.",
    )
    schedules = ScheduleSerializer(many=True)
    state = JobStateSerializer()
    last_run = RunSerializer(allow_null=True)
    stats = JobStatsSerializer()

    @extend_schema_field(ParamSpecSerializer(many=True))
    def get_params(self, overview) -> list[dict]:
        return ParamSpecSerializer(params_describe(get_job(overview.name)), many=True).data

    def get_time_zone(self, overview) -> str:
        return settings.TIME_ZONE


class JobDetailSerializer(JobSerializer):
    recent_runs = RunSerializer(many=True)
    missed_slots = serializers.DictField(
        child=MissedSlotsSerializer(),
        help_text="Per schedule name: the slots of the missed-slot window with no recorded run.",
    )


class StatusStatsSerializer(serializers.Serializer):
    totalExecutions = serializers.IntegerField(source="total")  # noqa: N815 - the seeds' shape
    successfulExecutions = serializers.IntegerField(source="succeeded")  # noqa: N815
    failedExecutions = serializers.IntegerField(source="failed")  # noqa: N815
    partialExecutions = serializers.IntegerField(source="partial")  # noqa: N815
    skippedExecutions = serializers.IntegerField(source="skipped")  # noqa: N815
    successRate = serializers.FloatField(source="success_rate", allow_null=True)  # noqa: N815


class StatusExecutionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField(source="job")
    status = serializers.ChoiceField(choices=RunStatus.choices)
    dryRun = serializers.BooleanField(source="dry_run")  # noqa: N815
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)  # noqa: N815
    completedAt = serializers.DateTimeField(source="finished_at", allow_null=True)  # noqa: N815
    success = serializers.SerializerMethodField()
    durationMs = serializers.IntegerField(source="duration_ms", allow_null=True)  # noqa: N815

    def get_success(self, run) -> bool:
        return run.status == RunStatus.SUCCEEDED


class StatusSerializer(serializers.Serializer):
    stats = StatusStatsSerializer()
    recentExecutions = StatusExecutionSerializer(many=True)  # noqa: N815


class RunListSerializer(serializers.Serializer):
    executions = RunSerializer(many=True)
    count = serializers.IntegerField()


class QueueSerializer(serializers.Serializer):
    name = serializers.CharField()
    waiting = serializers.IntegerField()
    delayed = serializers.IntegerField(help_text="Including retries waiting out their backoff.")
    in_flight = serializers.IntegerField(help_text="Fetched by a worker, not yet acknowledged.")
    dead_lettered = serializers.IntegerField()


class RequeueResultSerializer(serializers.Serializer):
    queue = serializers.CharField()
    requeued = serializers.IntegerField()
    runs_retried = serializers.IntegerField(
        help_text="Messages of finished runs, requeued as new runs linked to them."
    )


# --- Envelopes --------------------------------------------------------------------------------


def envelope(name: str, data: serializers.Field, *, message: bool = False):
    """The seeds' response shape, `{"success": true, "data": ...}`, as a named component."""
    fields = {"success": serializers.BooleanField(), "data": data}
    if message:
        fields["message"] = serializers.CharField()
    return type(name, (serializers.Serializer,), fields)


JobListResponse = envelope("JobListResponse", JobSerializer(many=True))
JobDetailResponse = envelope("JobDetailResponse", JobDetailSerializer())
TriggerResponse = envelope("TriggerResponse", RunSerializer(), message=True)
JobStateResponse = envelope("JobStateResponse", JobStateSerializer(), message=True)
StatusResponse = envelope("StatusResponse", StatusSerializer())
RunListResponse = envelope("RunListResponse", RunListSerializer())
RunDetailResponse = envelope("RunDetailResponse", RunDetailSerializer())
RetryResponse = envelope("RetryResponse", RunSerializer(), message=True)
ScheduleListResponse = envelope("ScheduleListResponse", ScheduleSerializer(many=True))
ScheduleDetailResponse = envelope("ScheduleDetailResponse", ScheduleDetailSerializer())
ScheduleWriteResponse = envelope("ScheduleWriteResponse", ScheduleDetailSerializer(), message=True)
ScheduleRemoveResponse = envelope("ScheduleRemoveResponse", ScheduleRefSerializer(), message=True)
QueueListResponse = envelope("QueueListResponse", QueueSerializer(many=True))
RequeueResponse = envelope("RequeueResponse", RequeueResultSerializer(), message=True)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per input field; empty when the error is not about one field.",
    )


class ErrorResponse(serializers.Serializer):
    success = serializers.BooleanField()
    error = ErrorDetailSerializer()
