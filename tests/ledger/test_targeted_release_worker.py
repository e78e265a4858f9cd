"""The giving seed's urgent release through a real `rundramatiq` worker and the Redis broker:
requested over the API's path with its escrow ids, executed by the worker, releasing just those."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import RunStatus
from jobs.services import job_run_request
from ledger.models import Escrow
from ledger.statuses import EscrowStatus
from tests.factories import HOLD, donation_at
from tests.invariants import assert_ledger_consistent
from tests.ledger.helpers import wait_until_finished, wallet_money_total

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_a_worker_executes_a_targeted_release_and_releases_only_its_escrows(worker_process):
    # given four due escrows, two of them urgent
    now = timezone.now()
    escrows = [
        donation_at(at=now - HOLD - timedelta(minutes=m), amount=1_000 + m).escrow
        for m in (1, 2, 3, 4)
    ]
    urgent = [escrows[1].pk, escrows[3].pk]
    money_before = wallet_money_total()

    # when the urgent release is requested as the API requests it, and sent to the worker
    run = job_run_request(
        job="release_escrows", trigger="api", params={"escrow_ids": urgent}, reason="urgent"
    )
    run = wait_until_finished(run)

    # then the worker released exactly those two escrows
    assert run.status == RunStatus.SUCCEEDED, run.error + worker_process.log_text()
    assert run.attempts.get().worker
    assert run.params == {"escrow_ids": sorted(urgent)}
    assert (run.summary["escrows_targeted"], run.summary["escrows_released"]) == (2, 2)
    assert run.summary["amount_released"] == escrows[1].amount + escrows[3].amount
    released = dict(Escrow.objects.values_list("pk", "released_by_run_id"))
    assert released == {escrow.pk: run.pk if escrow.pk in urgent else None for escrow in escrows}
    holding = Escrow.objects.filter(status=EscrowStatus.HOLDING).values_list("pk", flat=True)
    assert sorted(holding) == [escrows[0].pk, escrows[2].pk]
    # and the worker logged the seed's lines for them
    log = worker_process.log_text()
    assert f"[release_escrows #{run.pk}] Found 2 escrows ready for release" in log
    assert f"[release_escrows #{run.pk}] Escrow release job completed. Processed 2 escrows." in log
    assert wallet_money_total() == money_before
    assert_ledger_consistent()
