"""The ledger's jobs, one module per kind of work; registered in catalog order."""

from ledger.jobs.books import register_books_jobs
from ledger.jobs.milestones import register_milestone_jobs
from ledger.jobs.money import register_money_jobs


def register_ledger_jobs() -> None:
    register_money_jobs()
    register_milestone_jobs()
    register_books_jobs()
