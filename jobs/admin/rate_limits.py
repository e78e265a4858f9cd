"""Rate limits in the admin: every limit that can be set (each queue's and those the jobs draw
on) with the value in force and where it comes from, and a form that sets one or puts it back
to the environment's, through the service the API calls."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from redis.exceptions import RedisError

from jobs.admin.tools import ReadOnlyAdmin, ReasonForm, form_errors_from, refusal_text
from jobs.controls import RATE_LIMIT_MAX, RATE_WINDOW_MAX_SECONDS, rate_limit_set
from jobs.exceptions import QUEUE_LIMITS_PERMISSION, InvalidInput, StewardError
from jobs.fleet import rate_limit_names, rate_limit_overviews
from jobs.models import RateLimitSetting


class RateLimitForm(ReasonForm):
    name = forms.ChoiceField(choices=())
    limit = forms.IntegerField(
        required=False,
        widget=forms.TextInput(attrs={"size": 8}),
        help_text=f"Runs started per window, 1 to {RATE_LIMIT_MAX:,}.",
    )
    window_seconds = forms.IntegerField(
        required=False,
        widget=forms.TextInput(attrs={"size": 8}),
        help_text=f"1 to {RATE_WINDOW_MAX_SECONDS:,} seconds. Both empty: back to "
        "STEWARD_QUEUE_RATE_LIMITS, or no limit.",
    )
    field_order = ["name", "limit", "window_seconds", "reason"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].choices = [(name, name) for name in rate_limit_names()]
        # The reason, not the name, is what the operator types first.
        self.fields["reason"].widget.attrs.pop("autofocus", None)


@admin.register(RateLimitSetting)
class RateLimitSettingAdmin(ReadOnlyAdmin):
    """The change list is the page of every limit and the form; rows are the service's."""

    def has_view_permission(self, request, obj=None) -> bool:
        return super().has_view_permission(request, obj) or request.user.has_perm(
            QUEUE_LIMITS_PERMISSION
        )

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        can_change = request.user.has_perm(QUEUE_LIMITS_PERMISSION)
        if request.method == "POST":
            if not can_change:
                raise PermissionDenied
            form = RateLimitForm(request.POST)
            if form.is_valid() and self._set(request, form):
                return HttpResponseRedirect(request.path)
        else:
            form = RateLimitForm(initial={"name": request.GET.get("name", "")})
        context = {
            **self.admin_site.each_context(request),
            "title": "Rate limits",
            "opts": self.model._meta,
            "limits": rate_limit_overviews(),
            "form": form,
            "can_change": can_change,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/steward/rate_limits.html", context)

    def _set(self, request, form: RateLimitForm) -> bool:
        """Set the form's limit; False, with the refusal on the form, when refused."""
        data = form.cleaned_data
        try:
            now = rate_limit_set(
                name=data["name"],
                limit=data["limit"],
                window_seconds=data["window_seconds"],
                by=request.user.get_username(),
                reason=data["reason"],
            )
        except InvalidInput as exc:
            form_errors_from(form, exc)
            return False
        except (StewardError, RedisError) as exc:
            form.add_error(None, refusal_text(exc))
            return False
        shown = "no limit" if now is None else f"{now[0]:,} per {now[1]:,} s"
        self.message_user(request, f"The rate limit {data['name']} is now {shown}.")
        return True
