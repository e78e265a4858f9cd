"""The queues' serializers: each queue's counts and controls, a pause, a concurrency, a clear,
and the dead letters with their runs."""

from __future__ import annotations

from rest_framework import serializers

from jobs.api.serializers.common import (
    JsonIntegerField,
    QuerySerializer,
    ReasonInputSerializer,
    StrictCharField,
    StrictIntegerField,
    envelope,
)
from jobs.api.serializers.runs import RunSerializer
from jobs.controls import CONCURRENCY_MAX
from jobs.lanes import NORMAL, URGENT

DEAD_LETTERS_LIMIT_MAX = 500
# As many as one requeue takes by default (jobs.queues.queue_requeue_dead).
MESSAGE_IDS_MAX = 1_000


class MessageIdField(serializers.UUIDField):
    """A Dramatiq message id as it is written (a JSON string); DRF would also take a number."""

    default_error_messages = {"invalid": "Not a message id (a UUID, as `message_id` shows it)."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return str(super().to_internal_value(data))


# --- Inputs -----------------------------------------------------------------------------------


class ConcurrencyInputSerializer(ReasonInputSerializer):
    concurrency = JsonIntegerField(
        min_value=1,
        max_value=CONCURRENCY_MAX,
        allow_null=True,
        help_text="The most runs of the queue (both lanes) executing at once across every "
        "worker; null goes back to STEWARD_QUEUE_<NAME>_CONCURRENCY, or no limit.",
    )


class ClearInputSerializer(ReasonInputSerializer):
    confirm = StrictCharField(
        max_length=64, trim_whitespace=False, help_text="The queue's name again, to confirm."
    )


class DeadLetterQuerySerializer(QuerySerializer):
    limit = StrictIntegerField(
        min_value=1,
        max_value=DEAD_LETTERS_LIMIT_MAX,
        default=100,
        help_text="How many of the oldest dead letters to list.",
    )


class DeadLetterActionInputSerializer(ReasonInputSerializer):
    message_ids = serializers.ListField(
        child=MessageIdField(),
        required=False,
        min_length=1,
        max_length=MESSAGE_IDS_MAX,
        help_text="Just these dead letters (their `message_id`); all of them when left out. "
        "One not in the queue's dead letters is a 404 and nothing changes.",
    )


# --- Outputs ----------------------------------------------------------------------------------


class RateSerializer(serializers.Serializer):
    limit = serializers.IntegerField()
    window_seconds = serializers.IntegerField()

    def to_representation(self, rate):
        limit, window_seconds = rate
        return {"limit": limit, "window_seconds": window_seconds}


class QueueSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="The Dramatiq queue: a queue, or its urgent lane.")
    waiting = serializers.IntegerField()
    delayed = serializers.IntegerField(help_text="Including retries waiting out their backoff.")
    in_flight = serializers.IntegerField(help_text="Fetched by a worker, not yet acknowledged.")
    dead_lettered = serializers.IntegerField()
    queue = serializers.CharField(help_text="The queue whose controls this one obeys.")
    lane = serializers.ChoiceField(choices=[NORMAL, URGENT])
    paused = serializers.BooleanField()
    concurrency = serializers.IntegerField(
        allow_null=True, help_text="Runs of the queue executing at once across the fleet, at most."
    )
    concurrency_source = serializers.CharField(
        help_text='"run time" when an operator set it, "environment" from '
        'STEWARD_QUEUE_<NAME>_CONCURRENCY, "" for no limit.',
    )
    rate_limit = RateSerializer(allow_null=True, help_text="Runs started per window, at most.")


class QueueListResponse(serializers.Serializer):
    success = serializers.BooleanField()
    data = QueueSerializer(many=True)
    draining = serializers.BooleanField(help_text="The whole fleet takes no new message.")


class QueueControlSerializer(serializers.Serializer):
    queue = serializers.CharField()
    paused = serializers.BooleanField()
    concurrency = serializers.IntegerField(allow_null=True)
    concurrency_source = serializers.CharField()
    rate_limit = RateSerializer(allow_null=True)


class ClearResultSerializer(serializers.Serializer):
    queue = serializers.CharField()
    messages = serializers.IntegerField(help_text="Waiting and delayed messages dropped.")
    runs_cancelled = serializers.IntegerField(help_text="Queued runs those messages carried.")


class DeadLetterSerializer(serializers.Serializer):
    message_id = serializers.CharField()
    redis_message_id = serializers.CharField()
    actor = serializers.CharField()
    dead_since = serializers.DateTimeField()
    retries = serializers.IntegerField()
    error = serializers.CharField(help_text="The last line of its last traceback.")
    run = RunSerializer(allow_null=True, help_text="The run it carried, if it carried one.")


class DeadLetterListSerializer(serializers.Serializer):
    queue = serializers.CharField()
    total = serializers.IntegerField(help_text="Every dead letter of the queue.")
    dead_letters = DeadLetterSerializer(many=True, help_text="The oldest `limit` of them.")


class RequeueResultSerializer(serializers.Serializer):
    queue = serializers.CharField()
    requeued = serializers.IntegerField()
    runs_retried = serializers.IntegerField(
        help_text="Messages of finished runs, requeued as new runs linked to them."
    )


class DeleteResultSerializer(serializers.Serializer):
    queue = serializers.CharField()
    deleted = serializers.IntegerField()


# --- Envelopes --------------------------------------------------------------------------------


QueueControlResponse = envelope("QueueControlResponse", QueueControlSerializer(), message=True)
ClearResponse = envelope("ClearResponse", ClearResultSerializer(), message=True)
DeadLetterListResponse = envelope("DeadLetterListResponse", DeadLetterListSerializer())
RequeueResponse = envelope("RequeueResponse", RequeueResultSerializer(), message=True)
DeleteResponse = envelope("DeleteResponse", DeleteResultSerializer(), message=True)
