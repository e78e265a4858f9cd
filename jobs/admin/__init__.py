"""The engine in the admin: run records (read-only, with their cancel), job states and
schedules with their runtime controls, the queues with their controls and dead letters, the
rate limits, and the audits of schedules and of control actions. Every action asks for a
reason, records who asked, and calls the same service as the API and the dashboard.

Django's admin discovery imports this package; importing the modules registers their admins.
"""

from jobs.admin import audit, queues, rate_limits, runs, schedule_changes, schedules, states

__all__ = ["audit", "queues", "rate_limits", "runs", "schedule_changes", "schedules", "states"]
