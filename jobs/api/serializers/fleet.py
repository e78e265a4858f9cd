"""The fleet's serializers: its workers (with the runs they execute) and drain, and the rate
limits it obeys."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from jobs.api.serializers.common import JsonIntegerField, ReasonInputSerializer, envelope
from jobs.controls import RATE_LIMIT_MAX, RATE_WINDOW_MAX_SECONDS
from jobs.heartbeats import worker_is_gone
from jobs.models import WorkerHeartbeat

# --- Inputs -----------------------------------------------------------------------------------


class RateLimitInputSerializer(ReasonInputSerializer):
    limit = JsonIntegerField(
        min_value=1,
        max_value=RATE_LIMIT_MAX,
        allow_null=True,
        help_text="Runs started per window, at most; null, with a null window, goes back to "
        "STEWARD_QUEUE_RATE_LIMITS (or no limit).",
    )
    window_seconds = JsonIntegerField(
        min_value=1,
        max_value=RATE_WINDOW_MAX_SECONDS,
        allow_null=True,
        help_text="The window's length; null together with `limit` only.",
    )


# --- Outputs ----------------------------------------------------------------------------------


class RateLimitSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="A queue's name, or a limit the jobs draw on.")
    limit = serializers.IntegerField(allow_null=True)
    window_seconds = serializers.IntegerField(allow_null=True)
    source = serializers.CharField(
        help_text='"run time" when an operator set it, "environment" from '
        'STEWARD_QUEUE_RATE_LIMITS, "" for no limit.',
    )


class WorkerSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="host:pid")
    role = serializers.ChoiceField(choices=WorkerHeartbeat.Role.choices)
    host = serializers.CharField()
    pid = serializers.IntegerField()
    queues = serializers.ListField(child=serializers.CharField())
    threads = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    last_seen_at = serializers.DateTimeField()
    draining = serializers.BooleanField(help_text="Stopping: it takes no new message.")
    attempts = serializers.ListField(
        child=serializers.DictField(child=serializers.IntegerField()),
        help_text="The runs it is executing: [{run, attempt}].",
    )
    alive = serializers.SerializerMethodField(
        help_text="It beat within STEWARD_WORKER_LOST_AFTER seconds."
    )

    def get_alive(self, heartbeat: WorkerHeartbeat) -> bool:
        return not worker_is_gone(heartbeat, now=timezone.now())


class WorkerRunSerializer(serializers.Serializer):
    run = serializers.IntegerField()
    job = serializers.CharField()
    attempt = serializers.IntegerField()
    status = serializers.CharField(help_text="The run's status now.")


class WorkerWithRunsSerializer(WorkerSerializer):
    gone = serializers.BooleanField(
        help_text="Its heartbeat stopped (killed, or its host lost): `runs` are those it left."
    )
    runs = WorkerRunSerializer(
        many=True,
        help_text="The runs it is executing, as its last heartbeat named them; a gone "
        "worker's are the runs it was in when it stopped.",
    )

    def get_alive(self, heartbeat: WorkerHeartbeat) -> bool:
        return not heartbeat.gone


class DrainSerializer(serializers.Serializer):
    draining = serializers.BooleanField(help_text="No worker takes a new message.")
    draining_since = serializers.DateTimeField(allow_null=True)


class FleetSerializer(DrainSerializer):
    workers = WorkerSerializer(many=True, help_text="Every process that beat, live or stale.")


# --- Envelopes --------------------------------------------------------------------------------


RateLimitListResponse = envelope("RateLimitListResponse", RateLimitSerializer(many=True))
RateLimitResponse = envelope("RateLimitResponse", RateLimitSerializer(), message=True)
FleetResponse = envelope("FleetResponse", FleetSerializer())
WorkerListResponse = envelope("WorkerListResponse", WorkerWithRunsSerializer(many=True))
DrainResponse = envelope("DrainResponse", DrainSerializer(), message=True)
