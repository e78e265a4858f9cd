"""Runs by the row they changed, in the admin: an escrow's, wallet's, cycle's, match's and prize
pool's page links to the run list filtered to exactly the runs that changed it (real runs,
executed through the runner), for whoever may see runs; a bad filter is a 400 naming it."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from ledger.models import DonationCycle, Escrow
from tests.api.helpers import user_with
from tests.factories import HOLD, WalletFactory, donation_at, funded_wallet, match_at
from tests.leaderboard.factories import funded_pool, player, score_at
from tests.ledger.helpers import run_job

pytestmark = pytest.mark.django_db

RUNS = reverse("admin:jobs_jobrun_changelist")
LINK = re.compile(r'<a href="([^"]+)">Runs that changed it \((\d+)\)</a>')
VIEW_RUNS = "jobs.view_jobrun"


def runs_link(client, admin_name: str, pk: int) -> tuple[str, int] | None:
    """The page's "Runs that changed it (N)" link and its N, None when the page has none."""
    page = client.get(reverse(f"admin:{admin_name}_change", args=[pk]))
    assert page.status_code == 200
    found = LINK.search(page.content.decode())
    return (found.group(1).replace("&amp;", "&"), int(found.group(2))) if found else None


def listed_runs(client, url: str) -> set[int]:
    page = client.get(url)
    assert page.status_code == 200
    return {run.pk for run in page.context["cl"].result_list}


@pytest.fixture
def two_releases():
    """Two due escrows paid to one recipient, each released by its own targeted run, and an
    unrelated run: which run changed which row is known."""
    recipient = WalletFactory()
    past_hold = timezone.now() - HOLD - timedelta(minutes=5)
    first = donation_at(at=past_hold, recipient=recipient)
    second = donation_at(at=past_hold, recipient=recipient)
    first_escrow, second_escrow = (
        Escrow.objects.get(donation=first),
        Escrow.objects.get(donation=second),
    )
    now = timezone.now()
    first_run = run_job("release_escrows", as_of=now, params={"escrow_ids": [first_escrow.pk]})
    second_run = run_job("release_escrows", as_of=now, params={"escrow_ids": [second_escrow.pk]})
    other_run = run_job("expire_matches", as_of=now)
    assert first_run.status == second_run.status == "succeeded"
    return {
        "recipient": recipient,
        "first": first,
        "first_escrow": first_escrow,
        "first_run": first_run,
        "second_run": second_run,
        "other_run": other_run,
    }


def test_each_rows_page_links_to_exactly_the_runs_that_changed_it(admin_client_for, two_releases):
    # given two escrows released by two runs into one recipient's wallet, and an operator who
    # may see the ledger and the runs
    client = admin_client_for(
        user_with(
            VIEW_RUNS,
            "ledger.view_escrow",
            "ledger.view_wallet",
            "ledger.view_donationcycle",
        )
    )
    first, second = two_releases["first_run"].pk, two_releases["second_run"].pk
    first_escrow = two_releases["first_escrow"]

    # when they follow the escrow's link, then it lists only the run that released it
    url, count = runs_link(client, "ledger_escrow", first_escrow.pk)
    assert count == 1
    assert url == f"{RUNS}?entity=escrow&entity_id={first_escrow.pk}"
    assert listed_runs(client, url) == {first}

    # and the shared recipient's wallet lists both releases, the donor's only its own
    url, count = runs_link(client, "ledger_wallet", two_releases["recipient"].pk)
    assert (count, listed_runs(client, url)) == (2, {first, second})
    url, count = runs_link(client, "ledger_wallet", first_escrow.donor_id)
    assert (count, listed_runs(client, url)) == (1, {first})

    # and the cycle the first release obligated lists that run
    cycle = DonationCycle.objects.get(donation=two_releases["first"])
    url, count = runs_link(client, "ledger_donationcycle", cycle.pk)
    assert (count, listed_runs(client, url)) == (1, {first})

    # and the filtered list says what it is filtered by, with a way back to all runs
    page = client.get(f"{RUNS}?entity=escrow&entity_id={first_escrow.pk}").content.decode()
    assert f"escrow #{first_escrow.pk}" in page
    assert "All runs" in page


def test_a_pool_lists_the_run_that_finalized_it_and_a_match_no_run(admin_client_for):
    # given yesterday's funded daily pool with a score, finalized by a run at midnight, and a
    # pending match no run touched
    midnight = datetime.combine(timezone.now().date(), datetime.min.time(), tzinfo=UTC)
    pool = funded_pool(
        game="snake", period="daily", start=(midnight - timedelta(days=1)).date(), fees=2
    )
    score_at(user=player(), points=700, at=midnight - timedelta(hours=2))
    finalized = run_job("finalize_prize_pools", as_of=midnight)
    run_job("expire_matches", as_of=timezone.now())
    match = match_at(at=timezone.now(), donor=funded_wallet())
    client = admin_client_for(
        user_with(VIEW_RUNS, "leaderboard.view_prizepool", "ledger.view_match")
    )

    # when they follow each page's link
    pool.refresh_from_db()
    assert pool.finalized_by_run_id == finalized.pk
    url, count = runs_link(client, "leaderboard_prizepool", pool.pk)
    # then the pool's lists the finalizing run alone, the match's none
    assert (count, listed_runs(client, url)) == (1, {finalized.pk})
    url, count = runs_link(client, "ledger_match", match.pk)
    assert (count, listed_runs(client, url)) == (0, set())


def test_runs_by_row_need_the_right_to_see_runs(admin_client_for, two_releases):
    # given an operator who may see escrows but not runs
    client = admin_client_for(user_with("ledger.view_escrow"))
    escrow = two_releases["first_escrow"]

    # when they open the escrow, then it has no link to runs
    assert runs_link(client, "ledger_escrow", escrow.pk) is None
    # and the filtered run list is refused, as the run list is
    response = client.get(f"{RUNS}?entity=escrow&entity_id={escrow.pk}")
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("query", "field", "text"),
    [
        ("entity=nope&entity_id=1", "entity", "unknown entity &#x27;nope&#x27;; known: "),
        ("entity=escrow&entity_id=twelve", "entity_id", "a whole number"),
        ("entity=escrow", "entity_id", "a whole number"),
        ("entity_id=4", "entity", "give one of cycle, escrow, match, pool, wallet"),
    ],
)
def test_a_bad_row_filter_is_a_400_naming_the_parameter(admin_client_for, query, field, text):
    # given an operator who may see runs
    client = admin_client_for(user_with(VIEW_RUNS))

    # when they ask for the run list filtered by a row it cannot name
    response = client.get(f"{RUNS}?{query}")

    # then it is refused with the parameter at fault, not redirected to a database error
    assert response.status_code == 400
    body = response.content.decode()
    assert f"<code>{field}</code>" in body
    assert text in body
