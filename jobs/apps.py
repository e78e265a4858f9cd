from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from jobs import checks  # noqa: F401 - registers the cron check
        from jobs.lookups import register_any_lookup
        from jobs.retention import register_engine_jobs

        register_any_lookup()
        register_engine_jobs()
