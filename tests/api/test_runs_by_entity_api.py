"""Run history by entity: `?escrow=`, `?wallet=`, `?cycle=`, `?match=`, `?pool=` keep exactly
the runs that changed that row, as the rows name their runs; several together intersect; bad
ids are a 400 naming the filter."""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings

from jobs.entities import UnknownEntity, entity_names, entity_run_ids
from leaderboard.models import PrizePool
from ledger.models import DonationCycle, Escrow
from tests.factories import HOLD, WalletFactory, donation_at, match_at, obligated_cycle
from tests.leaderboard.factories import MONDAY, funded_pool, player, score_at
from tests.ledger.helpers import run_job

pytestmark = pytest.mark.django_db

AS_OF = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _listed(api, **filters) -> list[int]:
    response = api.get("/api/v1/runs/", filters)
    assert response.status_code == 200, response.json()
    return [run["id"] for run in response.json()["data"]["executions"]]


@pytest.fixture
def releases():
    """Two escrows into one recipient's wallet from two donors, released by two targeted
    runs, and a third run that found the first already released."""
    recipient = WalletFactory()
    first, second = (
        donation_at(at=AS_OF - HOLD - timedelta(minutes=minutes), recipient=recipient)
        for minutes in (1, 2)
    )
    runs = [
        run_job("release_escrows", as_of=AS_OF, params={"escrow_ids": [donation.escrow.pk]})
        for donation in (first, second)
    ]
    idle = run_job("release_escrows", as_of=AS_OF, params={"escrow_ids": [first.escrow.pk]})
    assert [run.summary["escrows_released"] for run in (*runs, idle)] == [1, 1, 0]
    return {
        "recipient": recipient,
        "escrows": [first.escrow, second.escrow],
        "runs": runs,
        "idle": idle,
    }


def test_an_escrow_lists_the_one_run_that_released_it(api, releases):
    # given two escrows each released by its own run, and a later run that found it released
    first, second = releases["escrows"]

    # when the history is filtered by each escrow
    # then each lists exactly the run that released it
    assert _listed(api, escrow=first.pk) == [releases["runs"][0].pk]
    assert _listed(api, escrow=second.pk) == [releases["runs"][1].pk]
    assert entity_run_ids("escrow", first.pk) == {releases["runs"][0].pk}


def test_a_wallet_lists_the_runs_that_moved_its_money_and_filters_intersect(api, releases):
    # given two releases into one recipient's wallet, from two donors
    first, second = releases["escrows"]
    first_run, second_run = releases["runs"]
    recipient = releases["recipient"].pk

    # when the history is filtered by the recipient's wallet, by the first donor's, and by
    # the recipient's together with one escrow or with the other donor
    # then the recipient's lists both releases (newest first), never the run that did nothing;
    # the first donor's only the run that paid its coins; together, the runs that did both
    assert _listed(api, wallet=recipient) == [second_run.pk, first_run.pk]
    assert _listed(api, wallet=first.donor_id) == [first_run.pk]
    assert _listed(api, wallet=recipient, escrow=first.pk) == [first_run.pk]
    assert _listed(api, escrow=first.pk, wallet=second.donor_id) == []


def test_a_cycle_lists_the_release_that_obligated_it(api, releases):
    # given the cycle of the first escrow's donation, obligated by its release
    cycle = DonationCycle.objects.get(donation=releases["escrows"][0].donation_id)
    assert cycle.status == "obligated"

    # when the history is filtered by it
    # then the run that released the escrow is listed
    assert _listed(api, cycle=cycle.pk) == [releases["runs"][0].pk]


def test_a_match_lists_the_run_that_expired_it(api):
    # given a match past its expiry, expired by a run, and a later run with nothing to do
    match = match_at(at=AS_OF - timedelta(hours=settings.MATCH_EXPIRY_HOURS + 1))
    run = run_job("expire_matches", as_of=AS_OF)
    idle = run_job("expire_matches", as_of=AS_OF)
    assert (run.summary["matches_expired"], idle.summary["matches_expired"]) == (1, 0)

    # when the history is filtered by the match, then only the run that expired it is listed
    assert _listed(api, match=match.pk) == [run.pk]


def test_a_cycle_and_its_wallet_list_the_run_that_defaulted_it(api):
    # given an obligated cycle gone overdue, defaulted by a reminders run
    due = AS_OF - timedelta(days=1)
    cycle = obligated_cycle(due_at=due)
    run = run_job("cycle_reminders", as_of=AS_OF)
    cycle.refresh_from_db()
    assert (cycle.status, cycle.defaulted_by_run_id) == ("defaulted", run.pk)

    # when the history is filtered by the cycle or by its wallet (whose trust score it lowered)
    # then the defaulting run is among them
    assert run.pk in _listed(api, cycle=cycle.pk)
    assert run.pk in _listed(api, wallet=cycle.wallet_id)


def test_a_pool_lists_the_run_that_finalized_and_paid_it(api):
    # given a funded daily pool with a best score, finalized by a run, and another pool
    pool = funded_pool(game="snake", period="daily", start=(MONDAY - timedelta(days=1)).date())
    score_at(user=player(), points=900, at=MONDAY - timedelta(hours=2))
    run = run_job("finalize_prize_pools", as_of=MONDAY)
    pool.refresh_from_db()
    assert (pool.status, pool.finalized_by_run_id) == ("finalized", run.pk)
    untouched = funded_pool(game="snake", period="daily", start=MONDAY.date())

    # when the history is filtered by each pool
    # then the finalized one lists its run, the open one nothing
    assert _listed(api, pool=pool.pk) == [run.pk]
    assert _listed(api, pool=untouched.pk) == []
    assert PrizePool.objects.filter(pk=untouched.pk, finalized_by_run__isnull=True).exists()


def test_every_domain_entity_is_registered_and_an_unknown_one_is_refused():
    assert entity_names() == ["cycle", "escrow", "match", "pool", "wallet"]
    with pytest.raises(UnknownEntity, match="unknown entity 'donor'"):
        entity_run_ids("donor", 1)


def test_an_escrow_no_run_changed_lists_nothing(api):
    escrow = donation_at(at=AS_OF - HOLD - timedelta(minutes=1)).escrow
    assert Escrow.objects.get(pk=escrow.pk).released_by_run is None

    assert _listed(api, escrow=escrow.pk) == []


@pytest.mark.parametrize("entity", ["escrow", "wallet", "cycle", "match", "pool"])
@pytest.mark.parametrize("value", ["abc", "-1", "0", "1.5", str(2**63), "9" * 40])
def test_a_bad_entity_id_is_a_400_naming_the_filter(api, entity, value):
    response = api.get("/api/v1/runs/", {entity: value})

    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [entity]
