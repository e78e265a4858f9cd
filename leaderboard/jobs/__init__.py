"""The leaderboard's jobs, one module per kind of work; registered in catalog order."""

from leaderboard.jobs.games import register_game_jobs
from leaderboard.jobs.validation import register_validation_jobs


def register_leaderboard_jobs() -> None:
    register_game_jobs()
    register_validation_jobs()
