"""How a fault scenario ends: the fleet settles, the reconciliation runs, and every invariant is
measured, recorded for the table and then asserted."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Min, Sum

from jobs.models import FINISHED_STATUSES, JobRun, RunStatus
from ledger.models import (
    Asset,
    DonationCycle,
    Escrow,
    SystemAccount,
    Transfer,
    TransferKind,
    Wallet,
)
from ledger.services.cycles import TRUST_PENALTY, cycles_overdue, cycles_to_remind
from ledger.services.delivery import notifications_due
from ledger.services.escrows import escrows_due
from ledger.services.matches import matches_due
from ledger.statuses import CycleStatus, EscrowStatus
from tests.faults.fleet import Fleet, run_and_wait
from tests.faults.harness import wait_for
from tests.faults.report import RESULTS, ScenarioResult
from tests.faults.workload import Workload
from tests.invariants import assert_ledger_consistent, cached_balances, transfer_replay

SWEPT = (RunStatus.SUCCEEDED, RunStatus.PARTIAL)


def latest_sweep(job: str) -> JobRun | None:
    """The job's latest run that swept (succeeded or partial): as of its `as_of`, nothing due
    may be left undone."""
    return (
        JobRun.objects.filter(job=job, status__in=SWEPT, dry_run=False, parent__isnull=True)
        .order_by("-as_of")
        .first()
    )


def lost_work() -> dict[str, int]:
    """Work due as of each job's latest sweep and still undone. Rows written by runs still
    open when that sweep started (e.g. cycles a concurrent release obligated) may have
    committed after it read: they wait for the next run and are not counted."""
    lost = {}
    if run := latest_sweep("release_escrows"):
        lost["escrows"] = escrows_due(as_of=run.as_of).count()
    if run := latest_sweep("expire_matches"):
        lost["matches"] = matches_due(as_of=run.as_of).count()
    if run := latest_sweep("cycle_reminders"):
        before = {"obligated_at__lt": written_and_committed_before(run.started_at)}
        lost["reminders"] = cycles_to_remind(as_of=run.as_of).filter(**before).count()
        lost["defaults"] = cycles_overdue(as_of=run.as_of).filter(**before).count()
    if run := latest_sweep("deliver_notifications"):
        before = written_and_committed_before(run.started_at)
        lost["notifications"] = (
            notifications_due(as_of=run.as_of).filter(created_at__lt=before).count()
        )
    return lost


def written_and_committed_before(moment: datetime) -> datetime:
    """A time before which every row a job run wrote had committed by `moment`: `moment`, or
    the start of the earliest run still open then. Rows are stamped when a batch writes them
    and the batch commits later; with cycles due at once (`CYCLE_DUE_DAYS=0`) a reminder missed
    that way is not retried, since the next sweep finds the cycle overdue."""
    earliest_open = (
        JobRun.objects.filter(started_at__lt=moment)
        .exclude(finished_at__lt=moment)
        .aggregate(earliest=Min("started_at"))["earliest"]
    )
    return min(moment, earliest_open) if earliest_open else moment


def duplicate_effects(fleet: Fleet) -> dict[str, int]:
    """Money, coins, penalties or messages applied more than once for one business event."""
    released = Escrow.objects.filter(status=EscrowStatus.RELEASED).count()
    kinds = dict(Transfer.objects.values_list("kind").annotate(n=Count("pk")))
    sends = Counter(fleet.sent_log.read_text().split()) if fleet.sent_log.exists() else {}
    defaults = dict(
        DonationCycle.objects.filter(status=CycleStatus.DEFAULTED)
        .values_list("wallet")
        .annotate(n=Count("pk"))
    )
    extra_penalties = 0
    for pk, trust in Wallet.objects.values_list("pk", "trust_score"):
        expected = max(Decimal("0"), Decimal("1.00") - TRUST_PENALTY * defaults.get(pk, 0))
        extra_penalties += int(abs(expected - trust) / TRUST_PENALTY)
    return {
        "escrow_releases": abs(kinds.get(TransferKind.ESCROW_RELEASE, 0) - released),
        "coin_awards": abs(kinds.get(TransferKind.COIN_AWARD, 0) - released),
        "notification_sends": sum(count - 1 for count in sends.values()),
        "trust_penalties": extra_penalties,
    }


def conservation_difference() -> int:
    """How far each asset is from summing to zero over all accounts, plus how far cached
    balances are from the replay of the transfers."""
    replay, cached = transfer_replay(), cached_balances()
    accounts = set(replay) | set(cached)
    drift = sum(abs(cached.get(code, 0) - replay.get(code, 0)) for code in accounts)
    wallets = Wallet.objects.aggregate(
        money=Sum("spendable_balance") + Sum("receivable_balance"), coins=Sum("charity_coins")
    )
    for asset in Asset.values:
        system = SystemAccount.objects.filter(asset=asset).aggregate(total=Sum("balance"))
        drift += abs((wallets[asset] or 0) + (system["total"] or 0))
    return drift


def slots_run_twice() -> int:
    return (
        JobRun.objects.filter(slot__isnull=False)
        .values("job", "slot")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .count()
    )


def conclude(
    scenario: str,
    *,
    fleet: Fleet,
    workload: Workload,
    started: float,
    lost_runs: frozenset[int] = frozenset(),
    settle_timeout: float = 180,
    **details,
) -> ScenarioResult:
    """Let the fleet settle, run the reconciliation on a worker, record the scenario's row and
    assert the invariants. `lost_runs` are runs whose messages the scenario destroyed: they
    too must end, repaired by `rescue_runs`."""
    # A run that never ends is measured as left open, and asserted below with the rest.
    with contextlib.suppress(AssertionError):
        wait_for(
            lambda: not JobRun.objects.exclude(status__in=FINISHED_STATUSES).exists(),
            timeout=settle_timeout,
            message="every run to finish",
            interval=0.5,
        )
    left_open = JobRun.objects.exclude(status__in=FINISHED_STATUSES).count()
    reconcile = run_and_wait("reconcile_ledger", reason=f"end of fault scenario {scenario}")
    released = latest_sweep("release_escrows")
    expired = latest_sweep("expire_matches")
    model = workload.differences(
        released_as_of=released.as_of if released else None,
        expired_as_of=expired.as_of if expired else None,
    )
    lost = lost_work()
    effects = duplicate_effects(fleet)
    duplicates = fleet.duplicate_deliveries()
    result = ScenarioResult(
        scenario=scenario,
        faults_injected=fleet.faults,
        runs=JobRun.objects.count(),
        duplicate_deliveries=sum(duplicates.values()),
        duplicate_effects=sum(effects.values()),
        lost_work=sum(lost.values()),
        conservation_difference=conservation_difference(),
        runs_left_open=left_open,
        seconds=round(time.monotonic() - started, 1),
        details={
            "profile": fleet.profile.name,
            "reconciliation": reconcile.status,
            "runs_by_status": dict(
                JobRun.objects.values_list("status").annotate(n=Count("pk")).order_by()
            ),
            "lost_runs_left_queued": JobRun.objects.filter(pk__in=lost_runs)
            .exclude(status__in=FINISHED_STATUSES)
            .count(),
            "lost_work": lost,
            "duplicate_deliveries": duplicates,
            "duplicate_effects": effects,
            "slots_run_twice": slots_run_twice(),
            "model_differences": model[:20],
            "workload": dict(workload.operations),
            **details,
        },
    )
    RESULTS.append(result)
    assert reconcile.status == RunStatus.SUCCEEDED, reconcile.summary
    assert result.duplicate_effects == 0, effects
    assert result.lost_work == 0, lost
    assert result.conservation_difference == 0
    assert result.runs_left_open == 0, result.details["runs_by_status"]
    assert result.details["slots_run_twice"] == 0
    assert not model, model
    assert_ledger_consistent()
    return result
