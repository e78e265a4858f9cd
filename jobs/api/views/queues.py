"""The queues' views: their message counts, and sending the dead-lettered messages again."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.serializers.queues import QueueListResponse, RequeueResponse
from jobs.api.views.common import errors, model_permission, ok
from jobs.exceptions import REQUEUE_DEAD_PERMISSION
from jobs.queues import queue_names, queue_requeue_dead, queue_stats

QUEUE_NAME = OpenApiParameter(
    "name", OpenApiTypes.STR, OpenApiParameter.PATH, description="A queue.", enum=queue_names()
)
QUEUES = ["queues"]


class QueueListApi(APIView):
    @extend_schema(
        operation_id="queues_list",
        tags=QUEUES,
        summary="Waiting, delayed, in-flight and dead-lettered messages per queue",
        responses={200: QueueListResponse, **errors(401, 403, 429, 503)},
    )
    def get(self, request: Request) -> Response:
        return ok(QueueListResponse, queue_stats())


class QueueRequeueDeadApi(APIView):
    permission_classes = [IsAdminUser, model_permission(REQUEUE_DEAD_PERMISSION)]

    @extend_schema(
        operation_id="queues_requeue_dead",
        tags=QUEUES,
        summary="Send a queue's dead-lettered messages again",
        description="A dead run message becomes a new run linked to the failed one; any "
        "other message is sent again as it was. Takes no body.",
        parameters=[QUEUE_NAME],
        request=None,
        responses={200: RequeueResponse, **errors(401, 403, 404, 429, 503)},
    )
    def post(self, request: Request, name: str) -> Response:
        counts = queue_requeue_dead(queue=name, requested_by=request.user.get_username())
        message = f"Requeued {counts['requeued']} dead-lettered message(s) of {name}"
        return ok(RequeueResponse, {"queue": name, **counts}, message=message)
