"""The jobs API: one view per operation; each parses, calls one service or selector, reports.

Reads need a staff user; every write also needs its model permission. Errors are mapped to
4xx answers by `jobs.api.exception_handlers.api_exception_handler`.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import status
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api import serializers as s
from jobs.exceptions import (
    PAUSE_PERMISSION,
    REQUEUE_DEAD_PERMISSION,
    RETRY_PERMISSION,
    TRIGGER_PERMISSION,
)
from jobs.models import Trigger
from jobs.queues import queue_names, queue_requeue_dead, queue_stats
from jobs.registry import all_jobs, get_job
from jobs.scheduling import job_pause, job_resume
from jobs.selectors import (
    job_detail,
    job_overviews,
    job_recent_finished_runs,
    job_run_get,
    job_run_list,
    job_run_totals,
)
from jobs.services import job_run_request

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


def model_permission(perm: str) -> type[BasePermission]:
    """A permission class that demands one model permission (superusers have them all)."""

    class HasModelPermission(BasePermission):
        message = f"This needs the {perm} permission."

        def has_permission(self, request, view) -> bool:
            return request.user.has_perm(perm)

    return HasModelPermission


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    descriptions = {
        400: "Invalid input, with a message per field.",
        401: "Not authenticated.",
        403: "Authenticated without the needed permission.",
        404: "No such job, run or queue.",
        409: "Conflicts with the state of the run or with an earlier request.",
        415: "The body is not JSON.",
        429: "Too many failed token authentications from this client; see Retry-After.",
        503: "The message broker does not answer.",
    }
    return {
        code: OpenApiResponse(response=s.ErrorResponse, description=descriptions[code])
        for code in codes
    }


READ_ERRORS = _errors(401, 403, 429)
JOB_NAME = OpenApiParameter(
    "name",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="A registered job.",
    enum=[spec.name for spec in all_jobs()],
)
RUN_ID = OpenApiParameter("run_id", OpenApiTypes.INT, OpenApiParameter.PATH)
QUEUE_NAME = OpenApiParameter(
    "name", OpenApiTypes.STR, OpenApiParameter.PATH, description="A queue.", enum=queue_names()
)
JOBS = ["jobs"]
RUNS = ["runs"]
QUEUES = ["queues"]


def _ok(serializer_class, data, *, code: int = status.HTTP_200_OK, **extra) -> Response:
    return Response(serializer_class({"success": True, "data": data, **extra}).data, status=code)


class JobListApi(APIView):
    @extend_schema(
        operation_id="jobs_list",
        tags=JOBS,
        summary="Every job with its schedule, state, last run and statistics",
        responses={200: s.JobListResponse, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        return _ok(s.JobListResponse, job_overviews())


class JobDetailApi(APIView):
    @extend_schema(
        operation_id="jobs_retrieve",
        tags=JOBS,
        summary="One job, with its recent runs and missed slots",
        parameters=[JOB_NAME],
        responses={200: s.JobDetailResponse, **_errors(401, 403, 404, 429)},
    )
    def get(self, request: Request, name: str) -> Response:
        return _ok(s.JobDetailResponse, job_detail(job=name))


class JobTriggerApi(APIView):
    permission_classes = [IsAdminUser, model_permission(TRIGGER_PERMISSION)]

    @extend_schema(
        operation_id="jobs_trigger",
        tags=JOBS,
        summary="Run a job now",
        description="Records a run (trigger `api`, who asked and why) and sends it to the "
        "workers. With an `Idempotency-Key`, repeating the same request answers with the same "
        "run (202 again, with `Idempotent-Replayed: true`); the same key with a different "
        "request is a 409.",
        parameters=[
            JOB_NAME,
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                {"type": "string", "pattern": s.IDEMPOTENCY_KEY.pattern, "maxLength": 255},
                OpenApiParameter.HEADER,
                description="1 to 255 printable ASCII characters without spaces.",
            ),
            OpenApiParameter(
                REPLAYED_HEADER,
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                description="`true` when the answer is the run of an earlier request with "
                "the same Idempotency-Key.",
                response=[202],
            ),
        ],
        request=s.TriggerInputSerializer,
        responses={202: s.TriggerResponse, **_errors(400, 401, 403, 404, 409, 415, 429, 503)},
    )
    def post(self, request: Request, name: str) -> Response:
        get_job(name)
        key = s.idempotency_key_or_none(request.headers.get(IDEMPOTENCY_HEADER))
        body = s.TriggerInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = job_run_request(
            job=name,
            trigger=Trigger.API,
            requested_by=request.user.get_username(),
            idempotency_key=key,
            **body.validated_data,
        )
        mode = "dry run" if run.dry_run else "run"
        message = f"Job '{name}' triggered: {mode} #{run.pk}"
        if run.replayed:
            message = f"Job '{name}' was already triggered with this key: {mode} #{run.pk}"
        response = _ok(s.TriggerResponse, run, code=status.HTTP_202_ACCEPTED, message=message)
        if run.replayed:
            response[REPLAYED_HEADER] = "true"
        return response


class _JobStateChangeApi(APIView):
    permission_classes = [IsAdminUser, model_permission(PAUSE_PERMISSION)]
    service = None
    verb = ""

    def post(self, request: Request, name: str) -> Response:
        get_job(name)
        body = s.ReasonInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        state = self.service(
            job=name, by=request.user.get_username(), reason=body.validated_data["reason"]
        )
        return _ok(s.JobStateResponse, state, message=f"Job '{name}' {self.verb}")


def _state_change_schema(operation_id: str, summary: str):
    return extend_schema_view(
        post=extend_schema(
            operation_id=operation_id,
            tags=JOBS,
            summary=summary,
            parameters=[JOB_NAME],
            request=s.ReasonInputSerializer,
            responses={200: s.JobStateResponse, **_errors(400, 401, 403, 404, 415, 429)},
        )
    )


@_state_change_schema("jobs_pause", "Pause a job: its scheduled slots are recorded as skipped")
class JobPauseApi(_JobStateChangeApi):
    service = staticmethod(job_pause)
    verb = "paused"


@_state_change_schema("jobs_resume", "Resume a paused job")
class JobResumeApi(_JobStateChangeApi):
    service = staticmethod(job_resume)
    verb = "resumed"


class JobStatusApi(APIView):
    @extend_schema(
        operation_id="jobs_status",
        tags=JOBS,
        summary="Totals, success rate and recent runs, in the seeds' shape",
        description="Counts every finished run, shards and dry runs excluded. "
        "`totalExecutions` counts the runs that did work (succeeded, partial, failed); "
        "skipped runs are reported apart. `successRate` is a percentage. "
        "`recentExecutions` lists the latest finished runs, dry runs included.",
        responses={200: s.StatusResponse, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        data = {"stats": job_run_totals(), "recentExecutions": job_recent_finished_runs()}
        return _ok(s.StatusResponse, data)


class RunListApi(APIView):
    @extend_schema(
        operation_id="runs_list",
        tags=RUNS,
        summary="Run history, newest first",
        parameters=[s.RunListQuerySerializer],
        responses={200: s.RunListResponse, **_errors(400, 401, 403, 429)},
    )
    def get(self, request: Request) -> Response:
        query = s.RunListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        runs = job_run_list(**query.validated_data)
        return _ok(s.RunListResponse, {"executions": runs, "count": len(runs)})


class RunDetailApi(APIView):
    @extend_schema(
        operation_id="runs_retrieve",
        tags=RUNS,
        summary="One run with its attempts, summary and error",
        parameters=[RUN_ID],
        responses={200: s.RunDetailResponse, **_errors(401, 403, 404, 429)},
    )
    def get(self, request: Request, run_id: int) -> Response:
        return _ok(s.RunDetailResponse, job_run_get(run_id=run_id))


class RunRetryApi(APIView):
    permission_classes = [IsAdminUser, model_permission(RETRY_PERMISSION)]

    @extend_schema(
        operation_id="runs_retry",
        tags=RUNS,
        summary="Retry a failed run: a new run linked to it",
        description="A run has at most one retry in flight: while one is queued or running, "
        "retrying again answers with that retry.",
        parameters=[RUN_ID],
        request=s.ReasonInputSerializer,
        responses={202: s.RetryResponse, **_errors(400, 401, 403, 404, 409, 415, 429, 503)},
    )
    def post(self, request: Request, run_id: int) -> Response:
        body = s.ReasonInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        failed = job_run_get(run_id=run_id)
        retry = job_run_request(
            job=failed.job,
            trigger=Trigger.RETRY,
            retry_of=failed,
            requested_by=request.user.get_username(),
            reason=body.validated_data["reason"],
        )
        message = f"Run #{run_id} retried as run #{retry.pk}"
        if retry.replayed:
            message = f"Run #{run_id} is already being retried as run #{retry.pk}"
        return _ok(s.RetryResponse, retry, code=status.HTTP_202_ACCEPTED, message=message)


class QueueListApi(APIView):
    @extend_schema(
        operation_id="queues_list",
        tags=QUEUES,
        summary="Waiting, delayed, in-flight and dead-lettered messages per queue",
        responses={200: s.QueueListResponse, **_errors(401, 403, 429, 503)},
    )
    def get(self, request: Request) -> Response:
        return _ok(s.QueueListResponse, queue_stats())


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
        responses={200: s.RequeueResponse, **_errors(401, 403, 404, 429, 503)},
    )
    def post(self, request: Request, name: str) -> Response:
        counts = queue_requeue_dead(queue=name, requested_by=request.user.get_username())
        message = f"Requeued {counts['requeued']} dead-lettered message(s) of {name}"
        return _ok(s.RequeueResponse, {"queue": name, **counts}, message=message)
