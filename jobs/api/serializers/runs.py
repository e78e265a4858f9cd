"""The runs' serializers: the history's filters, a run, its attempts, progress, repairs and
cancellation, and its log."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
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
from jobs.entities import entity_label, entity_names
from jobs.models import RunStatus, Trigger
from jobs.run_selectors import run_progress

PK_MAX = 2**63 - 1

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
        min_value=1, max_value=PK_MAX, required=False, help_text="Only runs of this schedule."
    )
    follow_up_of = StrictIntegerField(
        min_value=1,
        max_value=PK_MAX,
        required=False,
        help_text="Only the follow-up runs this run requested (its id).",
    )
    limit = StrictIntegerField(min_value=1, max_value=100, default=20)

    def get_fields(self):
        # One filter per kind of row the domain apps registered (escrow, wallet, ...).
        fields = super().get_fields()
        for entity in entity_names():
            fields[entity] = StrictIntegerField(
                min_value=1,
                max_value=PK_MAX,
                required=False,
                help_text=f"Only the runs that changed this {entity_label(entity)} (its id); "
                "with other such filters, the runs that changed all of them.",
            )
        return fields

    def validate(self, attrs):
        entities = {entity: attrs.pop(entity) for entity in entity_names() if entity in attrs}
        if entities:
            attrs["entities"] = entities
        return attrs


class RunLogQuerySerializer(QuerySerializer):
    attempt = StrictIntegerField(
        min_value=1,
        max_value=32_767,
        required=False,
        help_text="Only this attempt's lines (1 is the first); every attempt's by default.",
    )


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
    queued_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When its message was sent (or, delayed, came due) for a worker to take.",
    )
    wait_ms = serializers.IntegerField(
        allow_null=True, help_text="How long its message waited for a worker to start it."
    )


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField(allow_null=True, help_text="Null while it is not known.")
    what = serializers.CharField(help_text='What it counts, e.g. "escrows".')
    batches = serializers.IntegerField()
    per_second = serializers.FloatField(allow_null=True)
    seconds_left = serializers.FloatField(allow_null=True, help_text="An estimate.")
    at = serializers.DateTimeField(allow_null=True, help_text="When it was saved.")
    shards_done = serializers.IntegerField(
        allow_null=True, help_text="A fanned-out run's shards that have ended; null for others."
    )
    shards_total = serializers.IntegerField(allow_null=True)


class RepairSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    what = serializers.CharField()


class RunRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    job = serializers.CharField()


class FollowUpRefSerializer(RunRefSerializer):
    status = serializers.ChoiceField(choices=RunStatus.choices)


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
    follow_up_of = RunRefSerializer(
        allow_null=True,
        help_text="The run whose success requested this one (trigger `follow_up`); null for "
        "others.",
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
    follow_ups = FollowUpRefSerializer(
        many=True,
        source="follow_ups.all",
        help_text="The runs its success requested, as its job names them, newest first.",
    )
    progress = serializers.SerializerMethodField(
        help_text="Saved every few seconds while it runs; a fanned-out run's combines its "
        "shards'. Null before it reported any."
    )

    @extend_schema_field(ProgressSerializer(allow_null=True))
    def get_progress(self, run) -> dict | None:
        progress = run_progress(run)
        return None if progress is None else ProgressSerializer(progress).data


class LogLineSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    level = serializers.CharField(help_text='E.g. "INFO", "WARNING", "ERROR".')
    line = serializers.CharField()


class AttemptLogSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    lines = LogLineSerializer(
        many=True,
        source="log",
        help_text="Its last STEWARD_RUN_LOG_LINES lines, oldest first; saved with each "
        "progress save while it runs.",
    )


class RunLogSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    attempts = AttemptLogSerializer(many=True)


class RunListSerializer(serializers.Serializer):
    executions = RunSerializer(many=True)
    count = serializers.IntegerField()


# --- Envelopes --------------------------------------------------------------------------------


RunListResponse = envelope("RunListResponse", RunListSerializer())
RunDetailResponse = envelope("RunDetailResponse", RunDetailSerializer())
RunLogResponse = envelope("RunLogResponse", RunLogSerializer())
RetryResponse = envelope("RetryResponse", RunSerializer(), message=True)
CancelResponse = envelope("CancelResponse", RunDetailSerializer(), message=True)
