"""Helpers shared by the ledger job tests: running a job through the runner, table snapshots."""

from __future__ import annotations

import time
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db.models import F, Sum

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


def run_job(
    job: str, *, as_of: datetime, dry_run: bool = False, params: dict | None = None
) -> JobRun:
    """Record a CLI run and execute it in this process through the runner."""
    run = job_run_request(
        enqueue=False, job=job, trigger="cli", as_of=as_of, dry_run=dry_run, params=params
    )
    return job_run_execute(run_id=run.pk)


def wait_until_finished(run: JobRun, timeout: float = 60.0) -> JobRun:
    """The run once a worker has finished it; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_finished:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run #{run.pk} still {run.status} after {timeout}s")


def wallet_money_total() -> int:
    """All the money in wallets, spendable and receivable: a release only moves it."""
    return Wallet.objects.aggregate(total=Sum(F("spendable_balance") + F("receivable_balance")))[
        "total"
    ]


def ledger_snapshot() -> dict[str, list[dict]]:
    """Every row of every domain table (users too), ordered by primary key."""
    tables = {
        model._meta.label: list(model.objects.order_by("pk").values()) for model in DOMAIN_MODELS
    }
    tables["users"] = list(get_user_model().objects.order_by("pk").values())
    return tables


def counts_of(summary: dict, keys: tuple[str, ...]) -> dict:
    return {key: summary[key] for key in keys}
