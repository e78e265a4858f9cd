from django.apps import AppConfig
from django.db.models.signals import post_migrate


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from jobs import checks  # noqa: F401 - registers the cron check
        from jobs.lookups import register_any_lookup
        from jobs.rescue import register_rescue_job
        from jobs.retention import register_retention_job
        from jobs.runlog import run_log_capture_install

        post_migrate.connect(_ensure_default_schedules, sender=self)
        register_any_lookup()
        register_rescue_job()
        register_retention_job()
        run_log_capture_install()


def _ensure_default_schedules(**kwargs) -> None:
    from jobs.schedules import schedules_ensure_defaults

    schedules_ensure_defaults()
