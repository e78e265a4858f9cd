"""validate_leaderboards: every game x period board and the main leaderboard checked; a board
that fails ends the run partial, named, and alerts once.

A game board's ranks come from its own statement, so no change to the scores can make it
disagree with a recompute; what the check guards against is its reader going wrong (a
regression in the statement). That is simulated here by wrapping the real selector so that
it shows one entry wrongly, which is what such a regression would do.
"""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from jobs.models import RunStatus
from jobs.services import job_run_request
from leaderboard import selectors
from leaderboard.models import ArchivedScore, LeaderboardEntry
from leaderboard.periods import period_bounds, period_start
from tests.factories import UserFactory
from tests.leaderboard.factories import LeaderboardEntryFactory, score_at
from tests.ledger.helpers import run_job, wait_until_finished

# 13 snake players today (so that the sample draws ranks below the top 10), one more with an
# archived snake record, 2 tetris players today: 13 + 13 + 14 + 3 x 2 sampled entries.
SNAKE_PLAYERS = 13
EXPECTED_VALIDATED = 13 + 13 + 14 + 2 + 2 + 2


@pytest.fixture
def alert_mail(settings):
    settings.ADMINS = [("Operators", "ops@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    return mail


def _boards(now):
    """Sound boards: snake and tetris scores today, an archived record, a main leaderboard."""
    today, _ = period_bounds("daily", period_start("daily", now))
    for n in range(SNAKE_PLAYERS):
        user = UserFactory()
        score_at(user=user, points=100 + n % 4, at=today + timedelta(seconds=n))
        score_at(user=user, points=50, at=today + timedelta(seconds=60 + n))
    for n in range(2):
        score_at(user=UserFactory(), points=7, at=today + timedelta(seconds=n), game="tetris")
    ArchivedScore.objects.create(
        id=10**9,
        player=UserFactory(),
        game="snake",
        points=5_000,
        achieved_at=now - timedelta(days=400),
        archived_at=now,
    )
    for rank in (1, 2, 3):
        LeaderboardEntryFactory(rank=rank)


def _validation_alerts(outbox) -> list:
    """Every alert about the check: its own, and any the runner would send for a partial run
    (it sends none for this job, which alerts on its own terms)."""
    return [message for message in outbox if "validat" in message.subject]


def _tamper(monkeypatch, selector: str, change):
    """Make the real selector `selector` show its first entry changed by `change`."""
    real = getattr(selectors, selector)

    def tampered(**kwargs):
        shown = real(**kwargs)
        entries = shown.entries if hasattr(shown, "entries") else shown
        if kwargs["game"] == "snake" and kwargs["period"] == "daily" and entries:
            change(entries[0])
        return shown

    monkeypatch.setattr(selectors, selector, tampered)


@pytest.mark.django_db
def test_sound_boards_succeed_with_the_seeds_counts():
    # given sound boards
    now = timezone.now()
    _boards(now)

    # when the check runs
    run = run_job("validate_leaderboards", as_of=now)

    # then every board was processed and its sample validated
    assert run.status == RunStatus.SUCCEEDED, run.status_reason
    assert run.summary["leaderboards_processed"] == 15
    assert run.summary["entries_validated"] == EXPECTED_VALIDATED
    assert run.summary["entries_ranked"] == EXPECTED_VALIDATED
    assert run.summary["main_leaderboard_entries"] == 3
    assert (run.summary["errors"], run.summary["failing_boards"]) == (0, [])


@pytest.mark.django_db
def test_the_sample_is_reproducible_for_an_as_of(monkeypatch):
    # given sound boards, and the ranks each board is sampled at recorded
    now = timezone.now()
    _boards(now)
    drawn = []
    real = selectors.game_leaderboard_ranks

    def recording(**kwargs):
        drawn.append((kwargs["game"], kwargs["period"], tuple(kwargs["ranks"])))
        return real(**kwargs)

    monkeypatch.setattr(selectors, "game_leaderboard_ranks", recording)

    # when the check runs twice as of the same time
    run_job("validate_leaderboards", as_of=now)
    run_job("validate_leaderboards", as_of=now)

    # then both drew the same ranks below the top 10
    half = len(drawn) // 2
    first, second = drawn[:half], drawn[half:]
    assert first == second
    assert ("snake", "daily", (11, 12, 13)) in first


@pytest.mark.django_db
def test_a_tampered_rank_makes_the_run_partial_naming_the_board(monkeypatch):
    # given sound boards, read by a selector that shows its top entry ranked 2nd
    now = timezone.now()
    _boards(now)
    _tamper(monkeypatch, "game_leaderboard", lambda entry: entry.update(rank=2))

    # when the check runs
    run = run_job("validate_leaderboards", as_of=now)

    # then the run is partial, naming the board and why
    assert run.status == RunStatus.PARTIAL
    assert "snake daily" in run.status_reason
    assert run.summary["failing_boards"] == ["snake daily"]
    error = run.summary["board_errors"]["snake daily"]
    assert "rank 1 missing" in error
    assert "differ from a recompute: rank 2 shows #2" in error
    assert run.summary["errors"] == 1


@pytest.mark.django_db
def test_a_tampered_entry_that_no_longer_equals_the_recompute_is_caught(monkeypatch):
    # given sound boards, read by a selector that shows a drawn entry with a point more
    now = timezone.now()
    _boards(now)
    _tamper(
        monkeypatch,
        "game_leaderboard_ranks",
        lambda entry: entry.update(points=entry["points"] + 1),
    )

    # when the check runs
    run = run_job("validate_leaderboards", as_of=now)

    # then the run is partial, naming the board, and that entry is not counted as validated
    assert run.status == RunStatus.PARTIAL
    assert run.summary["failing_boards"] == ["snake daily"]
    assert "1 of 13 sampled entries differ" in run.summary["board_errors"]["snake daily"]
    assert run.summary["entries_validated"] == EXPECTED_VALIDATED - 1


@pytest.mark.django_db
def test_a_gap_in_the_main_leaderboards_ranks_is_caught():
    # given sound boards but a main leaderboard ranked 1, 2, 4
    now = timezone.now()
    _boards(now)
    LeaderboardEntry.objects.filter(rank=3).update(rank=4)

    # when the check runs
    run = run_job("validate_leaderboards", as_of=now)

    # then the main leaderboard is named, and where its ranks break
    assert run.status == RunStatus.PARTIAL
    assert run.summary["failing_boards"] == ["main leaderboard"]
    assert run.summary["board_errors"]["main leaderboard"] == (
        "ranks not contiguous from 1: broken at rank 4"
    )


@pytest.mark.django_db
def test_a_main_leaderboard_out_of_score_order_is_caught():
    # given a main leaderboard whose 2nd has a better score than its 1st
    now = timezone.now()
    _boards(now)
    LeaderboardEntry.objects.filter(rank=2).update(score=10**6)

    # when the check runs
    run = run_job("validate_leaderboards", as_of=now)

    # then it is named as out of order at rank 2
    assert run.summary["board_errors"]["main leaderboard"] == (
        "out of order: rank 2 beats the rank above it"
    )


@pytest.mark.django_db
def test_the_alert_goes_out_once_while_the_same_boards_keep_failing(alert_mail, monkeypatch):
    # given a main leaderboard with a gap; early in a day, so that the runs an hour later still
    # check the same day's game boards
    now = timezone.now().replace(hour=9, minute=0, second=0, microsecond=0)
    _boards(now)
    LeaderboardEntry.objects.filter(rank=3).update(rank=4)

    # when the check runs twice, and a dry run in between
    first = run_job("validate_leaderboards", as_of=now)
    dry = run_job("validate_leaderboards", as_of=now + timedelta(minutes=30), dry_run=True)
    second = run_job("validate_leaderboards", as_of=now + timedelta(hours=1))

    # then all three are partial, and one alert went out, from the first
    assert {first.status, dry.status, second.status} == {RunStatus.PARTIAL}
    assert (first.summary["alerted"], second.summary["alerted"]) == (True, False)
    assert "alerted" not in dry.summary
    alerts = _validation_alerts(alert_mail.outbox)
    assert len(alerts) == 1
    assert "1 leaderboards failing validation" in alerts[0].subject
    assert "main leaderboard: ranks not contiguous" in alerts[0].body

    # and once another board fails too, that is alerted again
    _tamper(monkeypatch, "game_leaderboard", lambda entry: entry.update(rank=2))
    third = run_job("validate_leaderboards", as_of=now + timedelta(hours=1, minutes=5))
    assert third.summary["failing_boards"] == ["snake daily", "main leaderboard"]
    assert third.summary["alerted"] is True
    assert len(_validation_alerts(alert_mail.outbox)) == 2


@pytest.mark.django_db
def test_a_run_for_one_game_checks_just_its_boards():
    # given sound boards and a main leaderboard with a gap
    now = timezone.now()
    _boards(now)
    LeaderboardEntry.objects.filter(rank=3).update(rank=4)

    # when the check runs for tetris
    run = run_job("validate_leaderboards", as_of=now, params={"game": "tetris"})

    # then only tetris's three boards were checked
    assert run.status == RunStatus.SUCCEEDED, run.status_reason
    assert run.summary["leaderboards_processed"] == 3
    assert run.summary["entries_validated"] == 6
    assert "main_leaderboard_entries" not in run.summary


@pytest.mark.django_db
def test_empty_boards_are_sound():
    # given no scores and no main leaderboard
    # when the check runs
    run = run_job("validate_leaderboards", as_of=timezone.now())

    # then it succeeds with nothing validated
    assert run.status == RunStatus.SUCCEEDED, run.status_reason
    assert (run.summary["leaderboards_processed"], run.summary["entries_validated"]) == (15, 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_worker_validates_the_boards_and_names_a_failing_one(worker_process):
    # given sound game boards and a main leaderboard with a gap
    now = timezone.now()
    _boards(now)
    LeaderboardEntry.objects.filter(rank=3).update(rank=4)

    # when the check is sent to a real worker
    run = job_run_request(job="validate_leaderboards", trigger="cli", reason="end-to-end test")
    run = wait_until_finished(run)

    # then the worker checked every board and ended the run partial, naming the main one
    assert run.status == RunStatus.PARTIAL, run.error + worker_process.log_text()
    assert run.attempts.get().worker
    assert run.summary["leaderboards_processed"] == 15
    assert run.summary["entries_validated"] == EXPECTED_VALIDATED
    assert run.summary["failing_boards"] == ["main leaderboard"]
    lines = [entry["line"] for entry in run.attempts.get().log]
    assert any(
        "Failed to validate main leaderboard: ranks not contiguous" in line for line in lines
    )
    assert any(line.endswith("Leaderboards processed: 15") for line in lines)
