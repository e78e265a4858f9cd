"""The queues' views: their counts and controls, pause and resume, concurrency, clearing, and
their dead letters (listed, requeued, deleted)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.serializers.common import ReasonInputSerializer
from jobs.api.serializers.queues import (
    ClearInputSerializer,
    ClearResponse,
    ConcurrencyInputSerializer,
    DeadLetterActionInputSerializer,
    DeadLetterListResponse,
    DeadLetterQuerySerializer,
    DeleteResponse,
    QueueControlResponse,
    QueueListResponse,
    RequeueResponse,
)
from jobs.api.views.common import errors, model_permission, ok, with_schedules
from jobs.controls import queue_concurrency_set, queue_pause, queue_resume
from jobs.dead_letters import queue_dead_letters, queue_delete_dead, queue_requeue_dead
from jobs.exceptions import (
    CLEAR_QUEUE_PERMISSION,
    DELETE_DEAD_PERMISSION,
    PAUSE_QUEUE_PERMISSION,
    QUEUE_LIMITS_PERMISSION,
    REQUEUE_DEAD_PERMISSION,
    VIEW_RUNS_PERMISSION,
)
from jobs.fleet import controlled_queues, fleet_draining, queue_controls, queue_overviews
from jobs.queues import queue_clear, queue_names

QUEUE_NAME = OpenApiParameter(
    "name",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="A queue, or its urgent lane (`<queue>-urgent`).",
    enum=queue_names(),
)
CONTROLLED_QUEUE_NAME = OpenApiParameter(
    "name",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="A queue; its controls cover its urgent lane too.",
    enum=controlled_queues(),
)
QUEUES = ["queues"]
WRITE_ERRORS = errors(400, 401, 403, 404, 415, 429)


class QueueListApi(APIView):
    @extend_schema(
        operation_id="queues_list",
        tags=QUEUES,
        summary="Every queue and lane: its messages, whether it is paused, its limits",
        description="One entry per Dramatiq queue, the urgent lanes included; `queue` names "
        "the queue whose controls it obeys. `draining` is the whole fleet's.",
        responses={200: QueueListResponse, **errors(401, 403, 429, 503)},
    )
    def get(self, request: Request) -> Response:
        return ok(QueueListResponse, queue_overviews(), draining=fleet_draining() is not None)


class _QueueControlApi(APIView):
    input_serializer = ReasonInputSerializer
    service = None
    verb = ""

    def post(self, request: Request, name: str) -> Response:
        body = self.input_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        self.service(queue=name, by=request.user.get_username(), **body.validated_data)
        control = queue_controls()[name]
        return ok(QueueControlResponse, control, message=self.message(control))


def _queue_control_schema(operation_id: str, summary: str, description: str, request):
    return extend_schema_view(
        post=extend_schema(
            operation_id=operation_id,
            tags=QUEUES,
            summary=summary,
            description=description,
            parameters=[CONTROLLED_QUEUE_NAME],
            request=request,
            responses={200: QueueControlResponse, **WRITE_ERRORS},
        )
    )


@_queue_control_schema(
    "queues_pause",
    "Pause a queue: no worker starts its messages",
    "Within a few seconds no worker anywhere starts a message of the queue or of its urgent "
    "lane; the messages stay where they are until it is resumed. Audited with who and why.",
    ReasonInputSerializer,
)
class QueuePauseApi(_QueueControlApi):
    permission_classes = [IsAdminUser, model_permission(PAUSE_QUEUE_PERMISSION)]
    service = staticmethod(queue_pause)

    def message(self, control) -> str:
        return f"Queue '{control.queue}' paused"


@_queue_control_schema(
    "queues_resume",
    "Resume a paused queue",
    "Its waiting messages run again. Audited with who and why.",
    ReasonInputSerializer,
)
class QueueResumeApi(_QueueControlApi):
    permission_classes = [IsAdminUser, model_permission(PAUSE_QUEUE_PERMISSION)]
    service = staticmethod(queue_resume)

    def message(self, control) -> str:
        return f"Queue '{control.queue}' resumed"


@_queue_control_schema(
    "queues_concurrency",
    "Set how many runs of a queue may execute at once across the fleet",
    "Enforced across every worker process and machine; `null` goes back to "
    "STEWARD_QUEUE_<NAME>_CONCURRENCY, or no limit. Audited with the value before and after.",
    ConcurrencyInputSerializer,
)
class QueueConcurrencyApi(_QueueControlApi):
    permission_classes = [IsAdminUser, model_permission(QUEUE_LIMITS_PERMISSION)]
    input_serializer = ConcurrencyInputSerializer
    service = staticmethod(queue_concurrency_set)

    def message(self, control) -> str:
        limit = control.concurrency or "no limit"
        return f"Queue '{control.queue}' concurrency: {limit}"


class QueueClearApi(APIView):
    permission_classes = [IsAdminUser, model_permission(CLEAR_QUEUE_PERMISSION)]

    @extend_schema(
        operation_id="queues_clear",
        tags=QUEUES,
        summary="Clear a queue: drop its waiting messages and cancel their runs",
        description="Drops every waiting and delayed message of this queue (a lane is cleared "
        "on its own) and cancels the queued runs they carried. Runs executing keep going; dead "
        "letters stay. `confirm` must repeat the queue's name.",
        parameters=[QUEUE_NAME],
        request=ClearInputSerializer,
        responses={200: ClearResponse, **errors(400, 401, 403, 404, 415, 429, 503)},
    )
    def post(self, request: Request, name: str) -> Response:
        body = ClearInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        counts = queue_clear(
            queue=name, requested_by=request.user.get_username(), **body.validated_data
        )
        message = (
            f"Cleared {counts['messages']} message(s) of {name}; "
            f"{counts['runs_cancelled']} run(s) cancelled"
        )
        return ok(ClearResponse, {"queue": name, **counts}, message=message)


class QueueDeadLetterListApi(APIView):
    permission_classes = [IsAdminUser, model_permission(VIEW_RUNS_PERMISSION)]

    @extend_schema(
        operation_id="queues_dead_letters",
        tags=QUEUES,
        summary="A queue's dead letters, oldest first, with the runs they carried",
        parameters=[QUEUE_NAME, DeadLetterQuerySerializer],
        responses={200: DeadLetterListResponse, **errors(400, 401, 403, 404, 429, 503)},
    )
    def get(self, request: Request, name: str) -> Response:
        query = DeadLetterQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        total, letters = queue_dead_letters(queue=name, **query.validated_data)
        with_schedules([letter.run for letter in letters])
        data = {"queue": name, "total": total, "dead_letters": letters}
        return ok(DeadLetterListResponse, data)


DEAD_LETTER_ERRORS = errors(400, 401, 403, 404, 415, 429, 503)


class QueueDeadLetterRequeueApi(APIView):
    permission_classes = [IsAdminUser, model_permission(REQUEUE_DEAD_PERMISSION)]

    @extend_schema(
        operation_id="queues_dead_letters_requeue",
        tags=QUEUES,
        summary="Send some or all of a queue's dead letters again",
        description="A failed run's message becomes a new run linked to the failed one; any "
        "other message is sent again as it was. Audited with who and why.",
        parameters=[QUEUE_NAME],
        request=DeadLetterActionInputSerializer,
        responses={200: RequeueResponse, **DEAD_LETTER_ERRORS},
    )
    def post(self, request: Request, name: str) -> Response:
        body = DeadLetterActionInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        counts = queue_requeue_dead(
            queue=name, requested_by=request.user.get_username(), **body.validated_data
        )
        message = f"Requeued {counts['requeued']} dead-lettered message(s) of {name}"
        return ok(RequeueResponse, {"queue": name, **counts}, message=message)


class QueueDeadLetterDeleteApi(APIView):
    permission_classes = [IsAdminUser, model_permission(DELETE_DEAD_PERMISSION)]

    @extend_schema(
        operation_id="queues_dead_letters_delete",
        tags=QUEUES,
        summary="Delete some or all of a queue's dead letters for good",
        description="Their runs keep their records. Audited with who, why and which messages.",
        parameters=[QUEUE_NAME],
        request=DeadLetterActionInputSerializer,
        responses={200: DeleteResponse, **DEAD_LETTER_ERRORS},
    )
    def post(self, request: Request, name: str) -> Response:
        body = DeadLetterActionInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        counts = queue_delete_dead(
            queue=name, requested_by=request.user.get_username(), **body.validated_data
        )
        message = f"Deleted {counts['deleted']} dead-lettered message(s) of {name}"
        return ok(DeleteResponse, {"queue": name, **counts}, message=message)


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
