"""The dashboard's one input: the reason an operator gives for an action, bounded like the
admin's (a reason is recorded on the run or the job state and shown on every surface)."""

from __future__ import annotations

from django import forms

REASON_MAX_LENGTH = 500
REASON_TOO_LONG = (
    "A reason is at most %(limit_value)d characters; this one has %(show_value)d. "
    "Shorten it and try again."
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
