"""The workers' view: every process by its heartbeat, with the runs it executes."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.serializers.fleet import WorkerListResponse
from jobs.api.views.common import errors, ok
from jobs.run_selectors import workers_with_runs


class WorkerListApi(APIView):
    @extend_schema(
        operation_id="workers_list",
        tags=["fleet"],
        summary="Every worker and scheduler process, alive or gone, with the runs it executes",
        description="A process is gone once it has not beaten for STEWARD_WORKER_LOST_AFTER "
        "seconds (a graceful stop removes it instead); a gone worker still lists the runs it "
        "was in, each with its job, attempt and status now.",
        responses={200: WorkerListResponse, **errors(401, 403, 429)},
    )
    def get(self, request: Request) -> Response:
        return ok(WorkerListResponse, workers_with_runs())
