"""Template filters of the operator pages."""

from django import template

from jobs.panels import millis_text

register = template.Library()


@register.filter
def millis(value) -> str:
    """A duration in milliseconds as a person reads it (`jobs.panels.millis_text`)."""
    return millis_text(None if value in (None, "") else int(value))
