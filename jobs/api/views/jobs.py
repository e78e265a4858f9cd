"""The jobs' views: list, detail, trigger, pause and resume, and the seeds' status totals,
execution history and trigger path."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.serializers.common import ReasonInputSerializer
from jobs.api.serializers.jobs import (
    IDEMPOTENCY_KEY,
    HistoryQuerySerializer,
    HistoryResponse,
    JobDetailResponse,
    JobListResponse,
    JobStateResponse,
    StatusResponse,
    TriggerInputSerializer,
    TriggerResponse,
    idempotency_key_or_none,
)
from jobs.api.views.common import errors, model_permission, ok, with_schedules
from jobs.exceptions import PAUSE_PERMISSION, TRIGGER_PERMISSION
from jobs.fleet import run_held_back
from jobs.models import Trigger
from jobs.registry import all_jobs, get_job
from jobs.scheduling import job_pause, job_resume
from jobs.selectors import job_detail, job_overviews, job_recent_finished_runs, job_run_totals
from jobs.services import job_run_request

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
READ_ERRORS = errors(401, 403, 429)
JOB_NAME = OpenApiParameter(
    "name",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="A registered job.",
    enum=[spec.name for spec in all_jobs()],
)
JOBS = ["jobs"]


class JobListApi(APIView):
    @extend_schema(
        operation_id="jobs_list",
        tags=JOBS,
        summary="Every job with its parameters, schedules, state, last run and statistics",
        description="Each job's schedules are listed under it, each with its next 3 runs in "
        "UTC and in its own time zone; `next_runs` merges the running ones.",
        responses={200: JobListResponse, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        overviews = job_overviews()
        with_schedules([overview.last_run for overview in overviews])
        return ok(JobListResponse, overviews)


class JobDetailApi(APIView):
    @extend_schema(
        operation_id="jobs_retrieve",
        tags=JOBS,
        summary="One job, with its recent runs and each schedule's missed slots",
        parameters=[JOB_NAME],
        responses={200: JobDetailResponse, **errors(401, 403, 404, 429)},
    )
    def get(self, request: Request, name: str) -> Response:
        detail = job_detail(job=name)
        with_schedules([detail.last_run, *detail.recent_runs])
        return ok(JobDetailResponse, detail)


class JobTriggerApi(APIView):
    permission_classes = [IsAdminUser, model_permission(TRIGGER_PERMISSION)]

    @extend_schema(
        operation_id="jobs_trigger",
        tags=JOBS,
        summary="Run a job now",
        description="Records a run (trigger `api`, who asked and why, its `params`) and sends "
        "it to the workers. With an `Idempotency-Key`, repeating the same request answers with "
        "the same run (202 again, with `Idempotent-Replayed: true`); the same key with a "
        "different request is a 409.",
        parameters=[
            JOB_NAME,
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern, "maxLength": 255},
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
        request=TriggerInputSerializer,
        responses={202: TriggerResponse, **errors(400, 401, 403, 404, 409, 415, 429, 503)},
    )
    def post(self, request: Request, name: str) -> Response:
        get_job(name)
        key = idempotency_key_or_none(request.headers.get(IDEMPOTENCY_HEADER))
        body = TriggerInputSerializer(data=request.data)
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
        elif held_back := run_held_back(run):
            message += f"; not started yet: {held_back}"
        response = ok(TriggerResponse, run, code=status.HTTP_202_ACCEPTED, message=message)
        if run.replayed:
            response[REPLAYED_HEADER] = "true"
        return response


class _JobStateChangeApi(APIView):
    permission_classes = [IsAdminUser, model_permission(PAUSE_PERMISSION)]
    service = None
    verb = ""

    def post(self, request: Request, name: str) -> Response:
        get_job(name)
        body = ReasonInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        state = self.service(
            job=name, by=request.user.get_username(), reason=body.validated_data["reason"]
        )
        return ok(JobStateResponse, state, message=f"Job '{name}' {self.verb}")


def _state_change_schema(operation_id: str, summary: str):
    return extend_schema_view(
        post=extend_schema(
            operation_id=operation_id,
            tags=JOBS,
            summary=summary,
            parameters=[JOB_NAME],
            request=ReasonInputSerializer,
            responses={200: JobStateResponse, **errors(400, 401, 403, 404, 415, 429)},
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
        responses={200: StatusResponse, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        data = {"stats": job_run_totals(), "recentExecutions": job_recent_finished_runs()}
        return ok(StatusResponse, data)


class JobHistoryApi(APIView):
    @extend_schema(
        operation_id="jobs_history",
        tags=JOBS,
        summary="The latest finished runs, in the arcade seed's shape",
        description="The arcade seed's `GET /jobs/history`: the latest finished runs (shards "
        "left out, dry runs included), newest first, as `recentExecutions` of the status lists "
        "them, with each one's error. `count` is how many are listed.",
        parameters=[HistoryQuerySerializer],
        responses={200: HistoryResponse, **errors(400, 401, 403, 429)},
    )
    def get(self, request: Request) -> Response:
        query = HistoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        runs = list(job_recent_finished_runs(limit=query.validated_data["limit"]))
        return ok(HistoryResponse, {"executions": runs, "count": len(runs)})


@extend_schema_view(
    post=extend_schema(
        operation_id="jobs_trigger_by_name",
        summary="Run a job now (the arcade seed's path)",
        description="The arcade seed's `POST /jobs/trigger/{name}`: the same as "
        "`POST /jobs/{name}/trigger`, with the same body, permissions and Idempotency-Key.",
    )
)
class JobTriggerByNameApi(JobTriggerApi):
    pass
