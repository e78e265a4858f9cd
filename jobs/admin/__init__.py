"""The engine in the admin: run records (read-only), job states and schedules with their
runtime controls, and the schedules' audit. Every action asks for a reason, records who asked,
and calls the same service as the API and the dashboard.

Django's admin discovery imports this package; importing the modules registers their admins.
"""

from jobs.admin import runs, schedule_changes, schedules, states

__all__ = ["runs", "schedule_changes", "schedules", "states"]
