from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "ledger"
    verbose_name = "Ledger"

    def ready(self) -> None:
        from ledger.entities import register_ledger_entities
        from ledger.jobs import register_ledger_jobs

        register_ledger_jobs()
        register_ledger_entities()
