from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from jobs import checks  # noqa: F401 - registers the cron check
        from jobs.lookups import register_any_lookup
        from jobs.rescue import register_rescue_job
        from jobs.retention import register_retention_job

        register_any_lookup()
        register_rescue_job()
        register_retention_job()
