"""What the serializers of every resource share: strict inputs (fields, serializers and their
schema), the job filter, the envelope of an answer and the error shape."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.settings import ISO_8601

from jobs.audit import REASON_MAX_LENGTH
from jobs.conf import conf
from jobs.registry import all_jobs

INTEGER = re.compile(r"^-?\d+$")
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


JOB_NAMES = [spec.name for spec in all_jobs()]


def job_filter(help_text: str) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=JOB_NAMES,
        required=False,
        help_text=help_text,
        error_messages={"invalid_choice": f"Unknown job; known jobs: {', '.join(JOB_NAMES)}."},
    )


# --- Envelopes --------------------------------------------------------------------------------


def envelope(name: str, data: serializers.Field, *, message: bool = False):
    """The seeds' response shape, `{"success": true, "data": ...}`, as a named component."""
    fields = {"success": serializers.BooleanField(), "data": data}
    if message:
        fields["message"] = serializers.CharField()
    return type(name, (serializers.Serializer,), fields)


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
