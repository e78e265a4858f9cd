"""The admin's add/change form of a schedule: the operator's fields and a reason, validated
and saved by the schedule services so that what they refuse shows on the fields."""

from __future__ import annotations

import contextlib
import json

from django import forms

from jobs.admin.tools import form_errors_from
from jobs.dashboard.forms import (
    REASON_MAX_LENGTH,
    REASON_TOO_LONG,
    ParamsField,
    params_from_text,
    params_hint,
)
from jobs.exceptions import InvalidInput, StewardError
from jobs.models import Schedule
from jobs.registry import all_jobs, get_job
from jobs.schedules import EDITABLE_FIELDS, MAX_NOTES_LENGTH, schedule_create, schedule_update

# catch_up on a new schedule: the job's own setting unless the operator says otherwise.
CATCH_UP_CHOICES = [("", "as its job (on for the money jobs)"), ("yes", "yes"), ("no", "no")]


class ScheduleForm(forms.ModelForm):
    """The operator's fields of a schedule and a reason. The schedule service validates and
    saves them in one step (see `_post_clean`), so what it refuses shows on the fields."""

    job = forms.ChoiceField()
    params = ParamsField(label="Parameters")
    catch_up = forms.TypedChoiceField(
        choices=CATCH_UP_CHOICES,
        coerce=lambda choice: choice == "yes",
        empty_value=None,
        required=False,
        label="Catch up",
        help_text="When the scheduler comes back after missing slots, run the latest once.",
    )
    notes = forms.CharField(
        required=False,
        max_length=MAX_NOTES_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    )
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        widget=forms.TextInput(attrs={"size": 60}),
        error_messages={"max_length": REASON_TOO_LONG},
        help_text=f"Recorded in the audit with your name; at most {REASON_MAX_LENGTH} characters.",
    )
    # Who saves, set by the admin for each request (ScheduleAdmin.get_form).
    changed_by = ""

    class Meta:
        model = Schedule
        fields = EDITABLE_FIELDS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        existing = self.instance.pk is not None
        jobs = [spec.name for spec in all_jobs()]
        if existing and self.instance.job not in jobs:
            jobs.append(self.instance.job)
        self.fields["job"].choices = [("", "---------")] + [(job, job) for job in jobs]
        self.fields["reason"].required = existing
        if not existing:
            self.fields["reason"].help_text += " Optional for a new schedule."
            return
        self.fields["catch_up"].choices = CATCH_UP_CHOICES[1:]
        self.initial["catch_up"] = "yes" if self.instance.catch_up else "no"
        self.initial["params"] = json.dumps(self.instance.params) if self.instance.params else ""
        # A job no longer registered gets no hint: the service says so on the job field.
        with contextlib.suppress(StewardError):
            self.fields["params"].help_text += " " + params_hint(get_job(self.instance.job))

    def clean(self):
        data = super().clean()
        try:
            spec = get_job(data.get("job") or "")
        except StewardError:
            return data  # the job field has its error; the parameters depend on it
        try:
            data["params"] = params_from_text(spec, data.get("params", ""))
        except InvalidInput as exc:
            form_errors_from(self, exc)
        return data

    def _post_clean(self) -> None:
        # The service stands in for the model's validation and save: it checks every field
        # together (job, cron, time zone, parameters, a unique name) and writes the schedule
        # with its audit, in the admin's transaction. Nothing runs after this that could fail.
        if self.errors:
            return
        data = self.cleaned_data
        fields = {field: data[field] for field in EDITABLE_FIELDS if field in data}
        if fields.get("catch_up") is None:
            fields.pop("catch_up", None)
        reason = data.get("reason", "")
        try:
            if self.instance.pk is None:
                self.instance = schedule_create(by=self.changed_by, reason=reason, **fields)
            else:
                self.instance = schedule_update(
                    schedule=self.instance, by=self.changed_by, reason=reason, **fields
                )
        except InvalidInput as exc:
            form_errors_from(self, exc)
