"""Input and output serializers of the jobs API.

Inputs are strict: unknown fields, wrong JSON types, out-of-range numbers and times, blank or
overlong text are refused with a message on the field, and the schema says so. Outputs are
wrapped in the seeds' envelope `{"success": true, "data"}`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.settings import ISO_8601

from jobs.conf import conf
from jobs.models import RunStatus, Trigger
from jobs.registry import all_jobs

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

JOB_NAMES = [spec.name for spec in all_jobs()]


class ReasonInputSerializer(StrictSerializer):
    reason = ReasonField(help_text="Why: recorded with who asked.")


class TriggerInputSerializer(ReasonInputSerializer):
    dry_run = StrictBooleanField(
        default=False, help_text="Report what the job would change without changing it."
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


class RunListQuerySerializer(StrictSerializer):
    job = serializers.ChoiceField(
        choices=JOB_NAMES,
        required=False,
        help_text="Only runs of this job.",
        error_messages={"invalid_choice": f"Unknown job; known jobs: {', '.join(JOB_NAMES)}."},
    )
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    trigger = serializers.ChoiceField(choices=Trigger.choices, required=False)
    since = IsoDateTimeField(
        required=False,
        help_text="Only runs recorded at or after this time, within "
        f"{conf.AS_OF_WINDOW_DAYS} days of now.",
    )
    limit = StrictIntegerField(min_value=1, max_value=100, default=20)

    def to_internal_value(self, data):
        # Query strings repeat keys in a QueryDict: the last value wins, as in Django.
        if hasattr(data, "dict"):
            data = data.dict()
        return super().to_internal_value(data)


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


class RunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    job = serializers.CharField()
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


class JobSerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    cron = serializers.CharField()
    schedule = serializers.CharField(help_text="The cron spec in words.")
    time_zone = serializers.SerializerMethodField()
    queue = serializers.CharField()
    next_runs = serializers.ListField(
        child=serializers.DateTimeField(), help_text="The next 3 run times, in TIME_ZONE."
    )
    state = JobStateSerializer()
    last_run = RunSerializer(allow_null=True)
    stats = JobStatsSerializer()

    def get_time_zone(self, overview) -> str:
        return settings.TIME_ZONE


class JobDetailSerializer(JobSerializer):
    recent_runs = RunSerializer(many=True)
    missed_slots = serializers.ListField(
        child=serializers.DateTimeField(),
        help_text="Slots of the last day the schedule expected but no run recorded.",
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
