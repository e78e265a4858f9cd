"""The jobs' serializers: a trigger and its answer, a job's state, overview and detail, and the
seeds' status totals and execution history."""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.api.serializers.common import (
    IsoDateTimeField,
    ParamsField,
    QuerySerializer,
    ReasonInputSerializer,
    StrictBooleanField,
    StrictIntegerField,
    envelope,
)
from jobs.api.serializers.runs import RunSerializer
from jobs.api.serializers.schedules import MissedSlotsSerializer, ScheduleSerializer
from jobs.conf import conf
from jobs.models import RunStatus
from jobs.params import params_describe
from jobs.registry import get_job

# A run may not handle work due in the future: that would release money early. Dry runs may
# look ahead, and a little clock skew between client and server is forgiven.
AS_OF_SKEW = timedelta(minutes=5)
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def idempotency_key_or_none(value: str | None) -> str | None:
    if value is None:
        return None
    if not IDEMPOTENCY_KEY.match(value):
        raise serializers.ValidationError(
            {"Idempotency-Key": ["Use 1 to 255 printable ASCII characters without spaces."]}
        )
    return value


# --- Inputs -----------------------------------------------------------------------------------


class TriggerInputSerializer(ReasonInputSerializer):
    dry_run = StrictBooleanField(
        default=False, help_text="Report what the job would change without changing it."
    )
    urgent = StrictBooleanField(
        default=False,
        help_text="Send the run to its queue's urgent lane, which workers take from before the "
        "normal one. A run with params of a job whose rows are claimed one by one (e.g. "
        "release_escrows with escrow_ids) is always urgent.",
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


class HistoryQuerySerializer(QuerySerializer):
    limit = StrictIntegerField(
        min_value=1,
        max_value=100,
        default=20,
        help_text="How many executions, newest first (1 to 100).",
    )


# --- Outputs ----------------------------------------------------------------------------------


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
    wait_p50_ms = serializers.IntegerField(
        allow_null=True,
        help_text="How long those runs waited for a worker to start them (their first "
        "attempts), the median.",
    )
    wait_p95_ms = serializers.IntegerField(allow_null=True, help_text="The 95th percentile.")


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


class HistoryExecutionSerializer(StatusExecutionSerializer):
    error = serializers.CharField(help_text="Why it failed; empty when it did not.")


class HistorySerializer(serializers.Serializer):
    executions = HistoryExecutionSerializer(many=True)
    count = serializers.IntegerField()


class StatusSerializer(serializers.Serializer):
    stats = StatusStatsSerializer()
    recentExecutions = StatusExecutionSerializer(many=True)  # noqa: N815


# --- Envelopes --------------------------------------------------------------------------------


JobListResponse = envelope("JobListResponse", JobSerializer(many=True))
JobDetailResponse = envelope("JobDetailResponse", JobDetailSerializer())
TriggerResponse = envelope("TriggerResponse", RunSerializer(), message=True)
JobStateResponse = envelope("JobStateResponse", JobStateSerializer(), message=True)
StatusResponse = envelope("StatusResponse", StatusSerializer())
HistoryResponse = envelope("HistoryResponse", HistorySerializer())
