"""The audit's serializers: its filters and its entries."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.api.serializers.common import (
    IsoDateTimeField,
    QuerySerializer,
    StrictIntegerField,
    envelope,
)
from jobs.audit import AUDIT_LIMIT_MAX
from jobs.conf import conf
from jobs.models import ControlAction

AUDIT_LIMIT_DEFAULT = 50
NAME_MAX_LENGTH = ControlAction._meta.get_field("target").max_length


# No NUL: a PostgreSQL text column cannot hold one, so no entry names it.
@extend_schema_field(
    {"type": "string", "minLength": 1, "maxLength": NAME_MAX_LENGTH, "pattern": r"^[^\u0000]+$"}
)
class AuditNameField(serializers.CharField):
    """Matched exactly as written, so it is not trimmed."""

    def __init__(self, **kwargs):
        super().__init__(max_length=NAME_MAX_LENGTH, trim_whitespace=False, **kwargs)


# --- Inputs -----------------------------------------------------------------------------------


class AuditQuerySerializer(QuerySerializer):
    action = serializers.ChoiceField(choices=ControlAction.Action.choices, required=False)
    target_type = serializers.ChoiceField(choices=ControlAction.Target.choices, required=False)
    target = AuditNameField(
        required=False,
        help_text='Exactly as the entries name it: "money", "#42 release_escrows", "fleet".',
    )
    actor = AuditNameField(
        required=False,
        help_text="Who did it: a username.",
    )
    since = IsoDateTimeField(
        required=False,
        help_text=f"Only entries at or after this time, within {conf.AS_OF_WINDOW_DAYS} days "
        "of now.",
    )
    limit = StrictIntegerField(min_value=1, max_value=AUDIT_LIMIT_MAX, default=AUDIT_LIMIT_DEFAULT)


# --- Outputs ----------------------------------------------------------------------------------


class ControlActionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.ChoiceField(choices=ControlAction.Action.choices)
    target_type = serializers.ChoiceField(choices=ControlAction.Target.choices)
    target = serializers.CharField()
    actor = serializers.CharField()
    at = serializers.DateTimeField()
    reason = serializers.CharField()
    before = serializers.JSONField(allow_null=True, help_text="What it changed, before.")
    after = serializers.JSONField(allow_null=True, help_text="And after.")


class AuditListSerializer(serializers.Serializer):
    entries = ControlActionSerializer(many=True, help_text="Newest first.")
    count = serializers.IntegerField()


# --- Envelopes --------------------------------------------------------------------------------


AuditListResponse = envelope("AuditListResponse", AuditListSerializer())
