"""The fleet's views: its workers and drain, starting and ending a drain, and the rate limits
it obeys."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.serializers.common import ReasonInputSerializer
from jobs.api.serializers.fleet import (
    DrainResponse,
    FleetResponse,
    RateLimitInputSerializer,
    RateLimitListResponse,
    RateLimitResponse,
)
from jobs.api.views.common import errors, model_permission, ok
from jobs.controls import fleet_drain_end, fleet_drain_start, rate_limit_set
from jobs.exceptions import DRAIN_PERMISSION, QUEUE_LIMITS_PERMISSION
from jobs.fleet import fleet_draining, fleet_workers, rate_limit_names, rate_limit_overviews

FLEET = ["fleet"]
RATE_LIMIT_NAME = OpenApiParameter(
    "name",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="A queue's rate limit, or one the jobs draw on (STEWARD_QUEUE_RATE_LIMITS).",
    enum=rate_limit_names(),
)


class FleetApi(APIView):
    @extend_schema(
        operation_id="fleet_retrieve",
        tags=FLEET,
        summary="The worker and scheduler processes by their heartbeats, and the drain",
        description="A process is `alive` while it beat within STEWARD_WORKER_LOST_AFTER "
        "seconds; one stopped gracefully removes its row, a killed one's goes stale.",
        responses={200: FleetResponse, **errors(401, 403, 429)},
    )
    def get(self, request: Request) -> Response:
        drain = fleet_draining()
        data = {
            "draining": drain is not None,
            "draining_since": drain.draining_since if drain else None,
            "workers": fleet_workers(),
        }
        return ok(FleetResponse, data)


class _DrainApi(APIView):
    permission_classes = [IsAdminUser, model_permission(DRAIN_PERMISSION)]
    service = None
    verb = ""

    def post(self, request: Request) -> Response:
        body = ReasonInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        state = self.service(by=request.user.get_username(), **body.validated_data)
        return ok(DrainResponse, state, message=self.verb)


def _drain_schema(operation_id: str, summary: str, description: str):
    return extend_schema_view(
        post=extend_schema(
            operation_id=operation_id,
            tags=FLEET,
            summary=summary,
            description=description,
            request=ReasonInputSerializer,
            responses={200: DrainResponse, **errors(400, 401, 403, 415, 429)},
        )
    )


@_drain_schema(
    "fleet_drain",
    "Drain the fleet: no worker takes a new message",
    "The runs the workers hold finish; the messages wait. /readyz answers 503 until the drain "
    "ends. Audited with who and why.",
)
class FleetDrainApi(_DrainApi):
    service = staticmethod(fleet_drain_start)
    verb = "The fleet is draining: no worker takes a new message"


@_drain_schema(
    "fleet_drain_end",
    "End a drain: the workers take messages again",
    "Audited with who and why.",
)
class FleetDrainEndApi(_DrainApi):
    service = staticmethod(fleet_drain_end)
    verb = "The drain ended: the workers take messages again"


class RateLimitListApi(APIView):
    @extend_schema(
        operation_id="rate_limits_list",
        tags=FLEET,
        summary="Every rate limit, with where its value comes from",
        description="A queue's limit caps the runs it starts across the fleet; any other is "
        "drawn on by the jobs (e.g. a channel's sends).",
        responses={200: RateLimitListResponse, **errors(401, 403, 429)},
    )
    def get(self, request: Request) -> Response:
        return ok(RateLimitListResponse, rate_limit_overviews())


class RateLimitSetApi(APIView):
    permission_classes = [IsAdminUser, model_permission(QUEUE_LIMITS_PERMISSION)]

    @extend_schema(
        operation_id="rate_limits_set",
        tags=FLEET,
        summary="Set a rate limit at run time, or go back to the environment's",
        description="`limit` runs per `window_seconds` across every worker; both `null` go "
        "back to STEWARD_QUEUE_RATE_LIMITS (or no limit), one `null` alone is a 400. Audited "
        "with the value before and after.",
        parameters=[RATE_LIMIT_NAME],
        request=RateLimitInputSerializer,
        responses={200: RateLimitResponse, **errors(400, 401, 403, 404, 415, 429)},
    )
    def post(self, request: Request, name: str) -> Response:
        body = RateLimitInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        rate_limit_set(name=name, by=request.user.get_username(), **body.validated_data)
        overview = next(limit for limit in rate_limit_overviews() if limit.name == name)
        rate = f"{overview.limit} per {overview.window_seconds} s" if overview.limit else "no limit"
        return ok(RateLimitResponse, overview, message=f"Rate limit '{name}': {rate}")
