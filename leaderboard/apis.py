"""The public, read-only game leaderboards.

Bad input answers 400 in the API's error envelope, through
`jobs.api.exception_handlers.api_exception_handler`.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from leaderboard.models import Game
from leaderboard.selectors import MAX_LIMIT, LeaderboardPeriod, game_leaderboard


class GameLeaderboardQuerySerializer(serializers.Serializer):
    period = serializers.ChoiceField(
        choices=LeaderboardPeriod.ALL,
        default=LeaderboardPeriod.DAILY,
        help_text="daily (today, UTC), weekly (this ISO week, from Monday) or alltime.",
        error_messages={
            "invalid_choice": f"Unknown period; one of: {', '.join(LeaderboardPeriod.ALL)}."
        },
    )
    limit = serializers.IntegerField(
        min_value=1, max_value=MAX_LIMIT, default=10, help_text="How many players."
    )


class GameLeaderboardInputSerializer(GameLeaderboardQuerySerializer):
    game = serializers.ChoiceField(
        choices=Game.values,
        error_messages={"invalid_choice": f"Unknown game; one of: {', '.join(Game.values)}."},
    )


class GameLeaderboardEntrySerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    player_id = serializers.IntegerField()
    username = serializers.CharField()
    points = serializers.IntegerField()
    achieved_at = serializers.DateTimeField()


class GameLeaderboardSerializer(serializers.Serializer):
    game = serializers.CharField()
    period = serializers.CharField()
    period_start = serializers.DateField(allow_null=True)
    entries = GameLeaderboardEntrySerializer(many=True)


class GameLeaderboardResponseSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    data = GameLeaderboardSerializer()


class LeaderboardErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class LeaderboardErrorSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    error = LeaderboardErrorDetailSerializer()


class GameLeaderboardApi(APIView):
    """Each player's best score in a game, ranked (ROW_NUMBER; the earliest score wins a tie)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["leaderboards"],
        summary="Top players of a game today, this week or of all time",
        parameters=[
            OpenApiParameter("game", OpenApiTypes.STR, OpenApiParameter.PATH, enum=Game.values),
            GameLeaderboardQuerySerializer,
        ],
        responses={
            200: GameLeaderboardResponseSerializer,
            400: OpenApiResponse(LeaderboardErrorSerializer, description="Invalid input."),
            404: OpenApiResponse(LeaderboardErrorSerializer, description="No such path."),
        },
    )
    def get(self, request: Request, game: str) -> Response:
        query = GameLeaderboardInputSerializer(data={**request.query_params.dict(), "game": game})
        query.is_valid(raise_exception=True)
        board = game_leaderboard(**query.validated_data)
        return Response(GameLeaderboardResponseSerializer({"success": True, "data": board}).data)
