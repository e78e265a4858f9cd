"""Helpers shared by the ledger job tests: running a job through the runner, table snapshots."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model

from jobs.models import JobRun
from jobs.runner import job_run_execute
from jobs.services import job_run_request
from ledger.models import (
    Donation,
    DonationCycle,
    Escrow,
    Match,
    Notification,
    SystemAccount,
    Transfer,
    Wallet,
)

DOMAIN_MODELS = (
    Wallet,
    SystemAccount,
    Transfer,
    Match,
    Donation,
    Escrow,
    DonationCycle,
    Notification,
)


def run_job(job: str, *, as_of: datetime, dry_run: bool = False) -> JobRun:
    """Record a CLI run and execute it in this process through the runner."""
    run = job_run_request(enqueue=False, job=job, trigger="cli", as_of=as_of, dry_run=dry_run)
    return job_run_execute(run_id=run.pk)


def ledger_snapshot() -> dict[str, list[dict]]:
    """Every row of every domain table (users too), ordered by primary key."""
    tables = {
        model._meta.label: list(model.objects.order_by("pk").values()) for model in DOMAIN_MODELS
    }
    tables["users"] = list(get_user_model().objects.order_by("pk").values())
    return tables


def counts_of(summary: dict, keys: tuple[str, ...]) -> dict:
    return {key: summary[key] for key in keys}
