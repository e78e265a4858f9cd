"""The runs' views: the history, one run, its log, a retry and a cancel."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.serializers.common import ReasonInputSerializer
from jobs.api.serializers.runs import (
    CancelResponse,
    RetryResponse,
    RunDetailResponse,
    RunListQuerySerializer,
    RunListResponse,
    RunLogQuerySerializer,
    RunLogResponse,
)
from jobs.api.views.common import errors, model_permission, ok, with_schedules
from jobs.cancellation import job_run_cancel
from jobs.exceptions import CANCEL_PERMISSION, RETRY_PERMISSION
from jobs.models import RunStatus, Trigger
from jobs.run_selectors import run_attempt_logs
from jobs.selectors import job_run_get, job_run_list
from jobs.services import job_run_request

RUN_ID = OpenApiParameter("run_id", OpenApiTypes.INT, OpenApiParameter.PATH)
RUNS = ["runs"]


class RunListApi(APIView):
    @extend_schema(
        operation_id="runs_list",
        tags=RUNS,
        summary="Run history, newest first",
        description="The entity filters (`escrow`, `wallet`, ...) keep exactly the runs that "
        "changed that row, as the rows name their runs; several together keep the runs that "
        "changed every one.",
        parameters=[RunListQuerySerializer],
        responses={200: RunListResponse, **errors(400, 401, 403, 429)},
    )
    def get(self, request: Request) -> Response:
        query = RunListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        runs = job_run_list(**query.validated_data)
        with_schedules(runs)
        return ok(RunListResponse, {"executions": runs, "count": len(runs)})


class RunDetailApi(APIView):
    @extend_schema(
        operation_id="runs_retrieve",
        tags=RUNS,
        summary="One run with its attempts, summary and error",
        parameters=[RUN_ID],
        responses={200: RunDetailResponse, **errors(401, 403, 404, 429)},
    )
    def get(self, request: Request, run_id: int) -> Response:
        run = job_run_get(run_id=run_id)
        with_schedules([run])
        return ok(RunDetailResponse, run)


class RunLogApi(APIView):
    @extend_schema(
        operation_id="runs_log",
        tags=RUNS,
        summary="The lines a run logged, per attempt",
        description="Each attempt's own lines (start banner, progress, warnings, errors, "
        "summary), the last STEWARD_RUN_LOG_LINES of them; a running attempt's are saved with "
        "each progress save. An attempt the run does not have is a 404.",
        parameters=[RUN_ID, RunLogQuerySerializer],
        responses={200: RunLogResponse, **errors(400, 401, 403, 404, 429)},
    )
    def get(self, request: Request, run_id: int) -> Response:
        query = RunLogQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        run = job_run_get(run_id=run_id)
        attempts = run_attempt_logs(run=run, **query.validated_data)
        return ok(RunLogResponse, {"run": run.pk, "attempts": attempts})


class RunRetryApi(APIView):
    permission_classes = [IsAdminUser, model_permission(RETRY_PERMISSION)]

    @extend_schema(
        operation_id="runs_retry",
        tags=RUNS,
        summary="Retry a failed run: a new run linked to it",
        description="A run has at most one retry in flight: while one is queued or running, "
        "retrying again answers with that retry.",
        parameters=[RUN_ID],
        request=ReasonInputSerializer,
        responses={202: RetryResponse, **errors(400, 401, 403, 404, 409, 415, 429, 503)},
    )
    def post(self, request: Request, run_id: int) -> Response:
        body = ReasonInputSerializer(data=request.data)
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
        return ok(RetryResponse, retry, code=status.HTTP_202_ACCEPTED, message=message)


class RunCancelApi(APIView):
    permission_classes = [IsAdminUser, model_permission(CANCEL_PERMISSION)]

    @extend_schema(
        operation_id="runs_cancel",
        tags=RUNS,
        summary="Cancel a run that has not finished",
        description="A queued run is cancelled at once: its message, when a worker gets it, is "
        "acknowledged without running. A running run stops at its next batch boundary, keeping "
        "the batches it committed, and ends `cancelled`; a fanned-out run cancels its shards. "
        "Who asked and why are recorded on the run and in the audit. A finished run is a 409; "
        "cancelling a run already asked to stop changes nothing.",
        parameters=[RUN_ID],
        request=ReasonInputSerializer,
        responses={200: CancelResponse, **errors(400, 401, 403, 404, 409, 415, 429)},
    )
    def post(self, request: Request, run_id: int) -> Response:
        body = ReasonInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = job_run_cancel(
            run=run_id, by=request.user.get_username(), reason=body.validated_data["reason"]
        )
        detail = job_run_get(run_id=run.pk)
        message = f"Run #{run.pk} cancelled"
        if detail.status != RunStatus.CANCELLED:
            message = f"Run #{run.pk} asked to stop: it ends cancelled at its next batch boundary"
        return ok(CancelResponse, detail, message=message)
