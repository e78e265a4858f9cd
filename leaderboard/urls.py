from django.urls import path

from leaderboard import apis

urlpatterns = [
    path(
        "leaderboards/<str:game>/",
        apis.GameLeaderboardApi.as_view(),
        name="api-game-leaderboard",
    ),
]
