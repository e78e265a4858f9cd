from django.apps import AppConfig


class LeaderboardConfig(AppConfig):
    name = "leaderboard"
    verbose_name = "Leaderboard"

    def ready(self) -> None:
        from leaderboard.entities import register_leaderboard_entities
        from leaderboard.jobs import register_leaderboard_jobs

        register_leaderboard_jobs()
        register_leaderboard_entities()
