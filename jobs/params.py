"""Job parameters: what each job accepts, declared once as a DRF serializer and validated the
same way for every surface (API, admin, dashboard, `runjob --param`, schedules).

A run stores its validated parameters as JSON; they are part of its idempotency fingerprint
and, for a job whose rows are safe to claim concurrently, of its lock scope.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from rest_framework import serializers

from jobs.exceptions import InvalidInput

if TYPE_CHECKING:
    from jobs.registry import JobSpec

MAX_IDS = 1_000


class IdListField(serializers.ListField):
    """Primary keys of the rows a targeted run handles: positive, at most MAX_IDS, stored
    sorted and without repeats (so equal targets are equal parameters). Optional: a run
    without them handles every row that is due."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("child", serializers.IntegerField(min_value=1, max_value=2**63 - 1))
        kwargs.setdefault("min_length", 1)
        kwargs.setdefault("max_length", MAX_IDS)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        return sorted(set(super().to_internal_value(data)))


class NoParams(serializers.Serializer):
    """A job that accepts no parameters."""


def _fields(spec: JobSpec) -> dict[str, serializers.Field]:
    return dict((spec.params or NoParams)().fields)


def params_validate(spec: JobSpec, raw: Any) -> dict:
    """The job's parameters from `raw` (a mapping of names to values), validated and in their
    stored form; InvalidInput naming each field at fault (as `params.<name>`) otherwise."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidInput({"params": ["must be an object of parameter names to values"]})
    fields = _fields(spec)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        accepted = ", ".join(sorted(fields)) or "none"
        raise InvalidInput(
            {
                f"params.{name}": [f"{spec.name} has no parameter {name!r}; it accepts: {accepted}"]
                for name in unknown
            }
        )
    serializer = (spec.params or NoParams)(data=raw)
    if not serializer.is_valid():
        raise InvalidInput(
            {f"params.{name}": _texts(errors) for name, errors in serializer.errors.items()}
        )
    return json.loads(json.dumps(serializer.validated_data, default=str))


def _texts(errors) -> list[str]:
    if isinstance(errors, dict):
        return [f"item {key}: {text}" for key, nested in errors.items() for text in _texts(nested)]
    if isinstance(errors, list):
        return [text for nested in errors for text in _texts(nested)]
    return [str(errors)]


def params_from_pairs(spec: JobSpec, pairs: list[str]) -> dict:
    """Parameters from `key=value` words (a list as comma-separated values), validated."""
    fields = _fields(spec)
    raw: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise InvalidInput({"params": [f"{pair!r} is not key=value"]})
        if isinstance(fields.get(key), serializers.ListField):
            raw[key] = [item.strip() for item in value.split(",") if item.strip()]
        else:
            raw[key] = value
    return params_validate(spec, raw)


def params_describe(spec: JobSpec) -> list[dict]:
    """Each parameter the job accepts, as the surfaces list them."""
    described = []
    for name, field in _fields(spec).items():
        entry = {
            "name": name,
            "type": _type_name(field),
            "help": str(field.help_text or ""),
            "required": field.required,
        }
        if isinstance(field, serializers.ChoiceField):
            entry["choices"] = list(field.choices)
        if field.default is not serializers.empty:
            entry["default"] = field.default
        described.append(entry)
    return described


def _type_name(field: serializers.Field) -> str:
    if isinstance(field, serializers.ListField):
        return f"list of {_type_name(field.child)}"
    if isinstance(field, serializers.ChoiceField):
        return "choice"
    return {
        serializers.IntegerField: "integer",
        serializers.BooleanField: "boolean",
        serializers.DateField: "date",
        serializers.DateTimeField: "datetime",
    }.get(type(field), "string")


def params_text(params: dict) -> str:
    """Parameters for a person: `escrow_ids=[4, 9] game=snake`, or "" for none."""
    return " ".join(f"{name}={json.dumps(value)}" for name, value in sorted(params.items()))


def params_digest(params: dict) -> str:
    """Equal for equal parameters, whatever their order."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def lock_scope_of(spec: JobSpec, params: dict) -> str:
    """The part of the job's lock a run with these parameters takes: the whole job, or, for a
    job whose rows are claimed safely by concurrent runs, just these parameters."""
    if not params or not spec.concurrent_targets:
        return ""
    return params_digest(params)
