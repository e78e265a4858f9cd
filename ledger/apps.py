from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "ledger"
    verbose_name = "Ledger"

    def ready(self) -> None:
        import ledger.lookups  # noqa: F401  (registers the `any` lookup)
        from ledger.jobs import register_ledger_jobs

        register_ledger_jobs()
