"""reconcile_ledger's own lines in its run's log: a start line, one line per check, and a
closing line that says whether the books are clean."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobs.models import RunStatus
from ledger.models import Wallet
from tests.factories import HOLD, donation_at
from tests.ledger.helpers import run_job
from tests.ledger.test_ledger_log_lines import own_lines

pytestmark = pytest.mark.django_db

AS_OF = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_reconcile_ledger_logs_each_check_and_a_clean_closing_line():
    # given a released donation: a deposit, a donation, a release and a coin award
    donation_at(at=AS_OF - HOLD - timedelta(minutes=1))
    run_job("release_escrows", as_of=AS_OF)

    # when the ledger is reconciled
    run = run_job("reconcile_ledger", as_of=AS_OF)

    # then it says it starts, names every check as ok, and closes clean
    assert run.status == RunStatus.SUCCEEDED
    lines = own_lines(run)
    checks = [check["check"] for check in run.summary["checks"]]
    assert lines[0] == "Starting ledger reconciliation..."
    assert [line.split(":")[0] for line in lines[1:-1]] == [f"Check {name}" for name in checks]
    assert all(": ok" in line for line in lines[1:-1])
    assert (
        lines[-1]
        == f"Ledger reconciliation completed. {len(checks)} checks clean over 4 transfers."
    )


def test_reconcile_ledger_closes_naming_how_many_checks_found_differences():
    # given a wallet whose cached balance no transfer explains
    donation_at(at=AS_OF - HOLD - timedelta(minutes=1))
    Wallet.objects.filter(pk=Wallet.objects.first().pk).update(spendable_balance=1)

    # when the ledger is reconciled
    run = run_job("reconcile_ledger", as_of=AS_OF)

    # then the run is partial and its closing line counts the failing checks
    assert run.status == RunStatus.PARTIAL
    failing = [check for check in run.summary["checks"] if not check["ok"]]
    lines = own_lines(run)
    assert any(
        line.startswith("Check cached_balances_equal_transfer_replay: 1 difference")
        for line in lines
    )
    assert lines[-1].startswith("Partial failure: ledger differences found: ")
    assert lines[-2] == (
        f"Ledger reconciliation completed. {len(failing)} of {len(run.summary['checks'])} "
        "checks found differences over 2 transfers."
    )
