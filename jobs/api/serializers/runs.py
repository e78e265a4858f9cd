"""The runs' serializers: the history's filters, a run, its attempts, its repairs and its
cancellation."""

from __future__ import annotations

from rest_framework import serializers

from jobs.api.serializers.common import (
    IsoDateTimeField,
    QuerySerializer,
    StrictIntegerField,
    envelope,
    job_filter,
)
from jobs.api.serializers.schedules import ScheduleRefSerializer
from jobs.conf import conf
from jobs.models import RunStatus, Trigger

# --- Inputs -----------------------------------------------------------------------------------


class RunListQuerySerializer(QuerySerializer):
    job = job_filter("Only runs of this job.")
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
    urgent = serializers.BooleanField(
        help_text="Sent to its queue's urgent lane, which workers take from first."
    )
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
    cancel_requested_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When an operator asked it to stop; a running run stops at its next batch "
        "boundary.",
    )
    cancel_requested_by = serializers.CharField()
    cancel_reason = serializers.CharField()


class RunDetailSerializer(RunSerializer):
    traceback = serializers.CharField()
    attempts = AttemptSerializer(many=True, source="attempts.all")
    repairs = RepairSerializer(
        many=True, help_text="What rescue_runs did to the run: re-sent, taken back, closed."
    )


class RunListSerializer(serializers.Serializer):
    executions = RunSerializer(many=True)
    count = serializers.IntegerField()


# --- Envelopes --------------------------------------------------------------------------------


RunListResponse = envelope("RunListResponse", RunListSerializer())
RunDetailResponse = envelope("RunDetailResponse", RunDetailSerializer())
RetryResponse = envelope("RetryResponse", RunSerializer(), message=True)
CancelResponse = envelope("CancelResponse", RunDetailSerializer(), message=True)
