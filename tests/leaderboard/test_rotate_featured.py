"""rotate_featured: 3 of the top 10, reproducible for a week, different across weeks."""

import hashlib
from datetime import timedelta

import pytest

from leaderboard.models import LeaderboardEntry
from tests.leaderboard.factories import MONDAY, LeaderboardEntryFactory
from tests.ledger.helpers import run_job

WEEK = timedelta(days=7)


def _featured() -> set[int]:
    return set(LeaderboardEntry.objects.filter(featured=True).values_list("user_id", flat=True))


def _auditor_draw(week: str, candidates: list[int]) -> set[int]:
    """The draw as an auditor redoes it from the published rule, outside the code."""
    tickets = {
        hashlib.sha256(f"featured:{week}:{uid}".encode()).hexdigest(): uid for uid in candidates
    }
    return {tickets[ticket] for ticket in sorted(tickets)[:3]}


@pytest.fixture
def top_fifteen() -> list[int]:
    """User ids of a leaderboard of 15, in rank order."""
    return [LeaderboardEntryFactory(rank=rank).user_id for rank in range(1, 16)]


@pytest.mark.django_db
def test_three_of_the_top_ten_are_featured_reproducibly_for_the_week(top_fifteen):
    # given a leaderboard of 15
    # when the featured users are rotated on Monday of ISO week 2026-W10
    run = run_job("rotate_featured", as_of=MONDAY)

    # then 3 of the top 10 are featured, exactly as the published draw says
    assert run.status == "succeeded", run.error
    assert run.summary["week"] == "2026-W10"
    assert run.summary["candidates"] == top_fifteen[:10]
    featured = _featured()
    assert len(featured) == 3
    assert featured <= set(top_fifteen[:10])
    assert featured == set(run.summary["featured"]) == _auditor_draw("2026-W10", top_fifteen[:10])
    assert set(
        LeaderboardEntry.objects.filter(featured=True).values_list("featured_week", flat=True)
    ) == {"2026-W10"}

    # when it runs again later that week
    again = run_job("rotate_featured", as_of=MONDAY + timedelta(days=3, hours=5))

    # then the draw is the same and nothing is rewritten
    assert again.summary["featured"] == run.summary["featured"]
    assert (again.summary["featured_set"], again.summary["featured_cleared"]) == (0, 0)
    assert _featured() == featured


@pytest.mark.django_db
def test_the_draw_differs_across_weeks_and_last_weeks_users_are_cleared(top_fifteen):
    # given the same top 10 over four weeks
    draws = []
    for n in range(4):
        # when the featured users are rotated each Monday
        run = run_job("rotate_featured", as_of=MONDAY + n * WEEK)
        draws.append(frozenset(run.summary["featured"]))

        # then exactly that week's draw is featured: the previous week's users are cleared
        assert _featured() == draws[-1]
        if n:
            assert run.summary["featured_cleared"] == len(draws[-2] - draws[-1])

    # and the weeks do not all draw the same users
    assert len(set(draws)) > 1


@pytest.mark.django_db
def test_a_short_leaderboard_features_everybody_on_it():
    # given a leaderboard of 2
    users = {LeaderboardEntryFactory(rank=rank).user_id for rank in (1, 2)}

    # when the featured users are rotated
    run_job("rotate_featured", as_of=MONDAY)

    # then both are featured
    assert _featured() == users


@pytest.mark.django_db
def test_dry_run_changes_nothing_and_predicts_the_real_run(top_fifteen):
    # given last week's featured users
    run_job("rotate_featured", as_of=MONDAY - WEEK)
    before = list(LeaderboardEntry.objects.order_by("pk").values())

    # when a dry run goes first
    dry = run_job("rotate_featured", as_of=MONDAY, dry_run=True)

    # then nothing changed, and the real run does exactly what the dry run said
    assert list(LeaderboardEntry.objects.order_by("pk").values()) == before
    real = run_job("rotate_featured", as_of=MONDAY)
    keys = ("week", "candidates", "featured", "featured_set", "featured_cleared")
    assert {k: dry.summary[k] for k in keys} == {k: real.summary[k] for k in keys}
