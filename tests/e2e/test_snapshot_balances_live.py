"""snapshot_balances through a real `rundramatiq` worker and the Redis broker: the day's rows
written, the seed-style lines logged, and the reconciliation clean against the snapshot."""

import pytest
from django.utils import timezone

from jobs.models import RunStatus
from jobs.services import job_run_request
from ledger.models import BalanceSnapshot, SystemAccount, Wallet, WalletSnapshot
from ledger.selectors import money_text
from ledger.services.demo import DemoPlan, demo_seed
from tests.ledger.helpers import wait_until_finished

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_worker_takes_the_days_snapshot_and_the_ledger_reconciles_against_it(worker_process):
    # given a demo ledger
    demo_seed(plan=DemoPlan(users=50, seed=11))

    # when the snapshot is requested as the API requests it, and run by the worker
    run = wait_until_finished(job_run_request(job="snapshot_balances", trigger="api"))

    # then the worker wrote a row per wallet, with the day's totals
    assert run.status == RunStatus.SUCCEEDED, run.error + worker_process.log_text()
    assert run.attempts.get().worker
    snapshot = BalanceSnapshot.objects.get()
    assert snapshot.day == timezone.localdate(run.as_of)
    assert snapshot.seen_transactions
    assert WalletSnapshot.objects.filter(snapshot=snapshot).count() == Wallet.objects.count()
    assert snapshot.accounts == SystemAccount.objects.count()
    log = worker_process.log_text()
    day = snapshot.day.isoformat()
    assert f"[snapshot_balances #{run.pk}] Taking the balance snapshot of {day}" in log
    assert (
        f"[snapshot_balances #{run.pk}] Balance snapshot of {day} completed: "
        f"{Wallet.objects.count()} wallets and {snapshot.accounts} accounts snapshotted, "
        f"{money_text(snapshot.money_held)} held"
    ) in log

    # and a reconciliation run by the worker finds the snapshot plus later transfers equal
    reconcile = wait_until_finished(job_run_request(job="reconcile_ledger", trigger="api"))
    assert reconcile.status == RunStatus.SUCCEEDED, reconcile.summary
    checks = {item["check"]: item for item in reconcile.summary["checks"]}
    assert checks["balances_equal_snapshot_plus_later_transfers"]["ok"]
    assert checks["balances_equal_snapshot_plus_later_transfers"]["note"] == f"snapshot of {day}"
