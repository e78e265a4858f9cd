"""The queues' serializers: each queue's message counts, and a requeue's result."""

from __future__ import annotations

from rest_framework import serializers

from jobs.api.serializers.common import envelope


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


QueueListResponse = envelope("QueueListResponse", QueueSerializer(many=True))
RequeueResponse = envelope("RequeueResponse", RequeueResultSerializer(), message=True)
