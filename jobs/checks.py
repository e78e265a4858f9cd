"""System checks: every job's cron spec is valid before anything is scheduled, and its follow-ups
name registered jobs without a loop."""

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from jobs.conf import conf
from jobs.cron import CronError, validate_cron
from jobs.follow_ups import follow_up_errors
from jobs.ratelimits import parse_rate_limits
from jobs.registry import all_jobs


def cron_errors() -> list[str]:
    errors = []
    for spec in all_jobs():
        try:
            validate_cron(spec.cron)
        except CronError as exc:
            errors.append(f"job {spec.name}: cron {spec.cron!r} is invalid: {exc}")
    return errors


@register()
def check_job_crons(app_configs, **kwargs) -> list[Error]:
    return [Error(message, id="steward.E001") for message in cron_errors()]


@register()
def check_rate_limits(app_configs, **kwargs) -> list[Error]:
    try:
        parse_rate_limits(conf.QUEUE_RATE_LIMITS)
    except ImproperlyConfigured as exc:
        return [Error(f"STEWARD_QUEUE_RATE_LIMITS: {exc}", id="steward.E002")]
    return []


@register()
def check_follow_ups(app_configs, **kwargs) -> list[Error]:
    return [Error(message, id="steward.E003") for message in follow_up_errors()]
