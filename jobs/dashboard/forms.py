"""The dashboard's inputs, shared with the admin: the reason an operator gives for an action
(recorded on the run, the job state or the schedule and shown on every surface) and a run's
parameters as a person types them, both bounded."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from django import forms

from jobs.audit import REASON_MAX_LENGTH
from jobs.exceptions import InvalidInput
from jobs.params import params_describe, params_from_pairs, params_validate

if TYPE_CHECKING:
    from jobs.registry import JobSpec

REASON_TOO_LONG = (
    "A reason is at most %(limit_value)d characters; this one has %(show_value)d. "
    "Shorten it and try again."
)
# As much as the API takes in a whole body: a thousand ids fit.
PARAMS_MAX_LENGTH = 16_000
PARAMS_TOO_LONG = "Parameters are at most %(limit_value)d characters; these have %(show_value)d."
PARAMS_HELP = (
    'A JSON object, e.g. {"escrow_ids": [4, 9]}, or one key=value a line, e.g. escrow_ids=4,9 '
    "(a list as comma-separated values). Empty: none."
)


class ReasonForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=REASON_MAX_LENGTH,
        error_messages={"max_length": REASON_TOO_LONG},
    )

    def error_text(self) -> str:
        return " ".join(self.errors.get("reason", [])) or "The reason was not accepted."


def reason_or_error(data, *, default: str) -> tuple[str, str]:
    """(reason, "") from posted data, the default when none was given; ("", error) when the
    reason is too long."""
    form = ReasonForm(data)
    if not form.is_valid():
        return "", form.error_text()
    return form.cleaned_data["reason"] or default, ""


class ParamsField(forms.CharField):
    """A run's or a schedule's parameters as typed; the job parses them (`params_from_text`)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("max_length", PARAMS_MAX_LENGTH)
        kwargs.setdefault("help_text", PARAMS_HELP)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3, "cols": 60}))
        kwargs.setdefault("error_messages", {"max_length": PARAMS_TOO_LONG})
        super().__init__(**kwargs)


def params_from_text(spec: JobSpec, text: str) -> dict:
    """The job's parameters from what an operator typed: a JSON object, or `key=value` lines
    (a list as comma-separated values), validated; InvalidInput naming the field otherwise."""
    text = (text or "").strip()
    if not text:
        return params_validate(spec, {})
    if text.startswith("{"):
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise InvalidInput({"params": [f"not a JSON object: {exc}"]}) from None
        return params_validate(spec, raw)
    return params_from_pairs(spec, [line for line in text.splitlines() if line.strip()])


def params_hint(spec: JobSpec) -> str:
    """What the job accepts, as a sentence: "release_escrows accepts escrow_ids (list of
    integer): release just these." or "cleanup takes no parameters."."""
    described = params_describe(spec)
    if not described:
        return f"{spec.name} takes no parameters."
    parts = []
    for entry in described:
        help_text = entry["help"].rstrip(".")
        parts.append(f"{entry['name']} ({entry['type']})" + (f": {help_text}" if help_text else ""))
    return f"{spec.name} accepts {'; '.join(parts)}."


def invalid_input_text(exc: InvalidInput) -> str:
    """The refusal in one line, each field named without the `params.` prefix."""
    return "; ".join(
        f"{field.removeprefix('params.')}: {' '.join(messages)}"
        for field, messages in exc.fields.items()
    )


def params_or_error(data, *, spec: JobSpec) -> tuple[dict, str]:
    """(params, "") from posted data; ({}, error) when they are too long or not the job's."""
    field = ParamsField()
    try:
        return params_from_text(spec, field.clean(data.get("params", ""))), ""
    except forms.ValidationError as exc:
        return {}, " ".join(exc.messages)
    except InvalidInput as exc:
        return {}, invalid_input_text(exc)


def form_error_text(form: forms.Form) -> str:
    """A bound form's errors in one line, each field named."""
    return "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())


WHOLE_NUMBER = {"invalid": "Enter a whole number."}


class ConcurrencyForm(forms.Form):
    """A queue's fleet-wide concurrency as typed: a whole number, or empty for its default.
    The range is the service's to check."""

    concurrency = forms.IntegerField(required=False, error_messages=WHOLE_NUMBER)


class RateLimitForm(forms.Form):
    """A rate limit to set: so many messages per so many seconds (resetting takes no form)."""

    limit = forms.IntegerField(error_messages=WHOLE_NUMBER)
    window_seconds = forms.IntegerField(error_messages=WHOLE_NUMBER)


class ClearForm(forms.Form):
    """Clearing a queue: its name typed again to confirm (the service compares the two)."""

    confirm = forms.CharField(required=False, max_length=200)


class DeadLetterForm(forms.Form):
    """Which dead letter a button acts on: a Dramatiq message id, or none for all of them."""

    message_id = forms.CharField(required=False, max_length=64)


def urgent_asked(data) -> bool:
    """Whether the trigger form's "urgent" box was ticked (a run for the urgent lane)."""
    return forms.BooleanField(required=False).clean(data.get("urgent"))


def cleaned_or_error(form_class: type[forms.Form], data) -> tuple[dict, str]:
    """({field: value}, "") from posted data; ({}, error naming the fields) when refused."""
    form = form_class(data)
    if not form.is_valid():
        return {}, form_error_text(form)
    return form.cleaned_data, ""
