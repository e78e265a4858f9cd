"""The jobs API: one view per operation; each parses, calls one service or selector, reports.

Reads need a staff user (schedules also their view permission); every write also needs its
model permission. Errors are mapped to 4xx answers by
`jobs.api.exception_handlers.api_exception_handler`.
"""

from __future__ import annotations

import dataclasses
import functools

from django.db.models import prefetch_related_objects
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api import serializers as s
from jobs.exceptions import (
    ADD_SCHEDULES_PERMISSION,
    CHANGE_SCHEDULES_PERMISSION,
    DELETE_SCHEDULES_PERMISSION,
    PAUSE_PERMISSION,
    PAUSE_SCHEDULES_PERMISSION,
    REQUEUE_DEAD_PERMISSION,
    RETRY_PERMISSION,
    TRIGGER_PERMISSION,
    VIEW_SCHEDULES_PERMISSION,
)
from jobs.models import JobRun, Schedule, Trigger
from jobs.queues import queue_names, queue_requeue_dead, queue_stats
from jobs.registry import all_jobs, get_job
from jobs.schedules import (
    ScheduleNotFound,
    schedule_create,
    schedule_get,
    schedule_pause,
    schedule_remove,
    schedule_resume,
    schedule_update,
)
from jobs.scheduling import job_pause, job_resume
from jobs.selectors import (
    job_detail,
    job_overviews,
    job_recent_finished_runs,
    job_run_get,
    job_run_list,
    job_run_totals,
    schedule_changes,
    schedule_missed_slots,
    schedule_overviews,
)
from jobs.services import job_run_request

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


@functools.cache
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
        404: "No such job, run, queue or schedule.",
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
SCHEDULE_ID = OpenApiParameter("schedule_id", OpenApiTypes.INT, OpenApiParameter.PATH)
QUEUE_NAME = OpenApiParameter(
    "name", OpenApiTypes.STR, OpenApiParameter.PATH, description="A queue.", enum=queue_names()
)
JOBS = ["jobs"]
RUNS = ["runs"]
SCHEDULES = ["schedules"]
QUEUES = ["queues"]


def _ok(serializer_class, data, *, code: int = status.HTTP_200_OK, **extra) -> Response:
    return Response(serializer_class({"success": True, "data": data, **extra}).data, status=code)


def _with_schedules(runs: list[JobRun | None]) -> None:
    """Each run's schedule read in one query, as the run serializer names it."""
    prefetch_related_objects([run for run in runs if run is not None], "schedule")


class JobListApi(APIView):
    @extend_schema(
        operation_id="jobs_list",
        tags=JOBS,
        summary="Every job with its parameters, schedules, state, last run and statistics",
        description="Each job's schedules are listed under it, each with its next 3 runs in "
        "UTC and in its own time zone; `next_runs` merges the running ones.",
        responses={200: s.JobListResponse, **READ_ERRORS},
    )
    def get(self, request: Request) -> Response:
        overviews = job_overviews()
        _with_schedules([overview.last_run for overview in overviews])
        return _ok(s.JobListResponse, overviews)


class JobDetailApi(APIView):
    @extend_schema(
        operation_id="jobs_retrieve",
        tags=JOBS,
        summary="One job, with its recent runs and each schedule's missed slots",
        parameters=[JOB_NAME],
        responses={200: s.JobDetailResponse, **_errors(401, 403, 404, 429)},
    )
    def get(self, request: Request, name: str) -> Response:
        detail = job_detail(job=name)
        _with_schedules([detail.last_run, *detail.recent_runs])
        return _ok(s.JobDetailResponse, detail)


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
        _with_schedules(runs)
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
        run = job_run_get(run_id=run_id)
        _with_schedules([run])
        return _ok(s.RunDetailResponse, run)


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


def _schedule_detail(schedule: Schedule) -> dict:
    """A schedule as its detail shows it: its overview, its missed slots and its audit."""
    now = timezone.now()
    overview = next(
        (
            overview
            for overview in schedule_overviews(job=schedule.job, now=now)
            if overview.schedule.pk == schedule.pk
        ),
        None,
    )
    if overview is None:  # removed by someone else meanwhile
        raise ScheduleNotFound(schedule.pk)
    return {
        **{field.name: getattr(overview, field.name) for field in dataclasses.fields(overview)},
        "missed_slots": schedule_missed_slots(schedule=overview.schedule, now=now),
        "changes": schedule_changes(schedule=overview.schedule),
    }


# Not a docstring: the schema would show it as each operation's description.
# Staff only, and each method needs its own model permission.
class _ScheduleApi(APIView):
    method_permissions: dict[str, str] = {}

    def get_permissions(self) -> list[BasePermission]:
        method = "GET" if self.request.method == "HEAD" else self.request.method
        perm = self.method_permissions.get(method)
        # A method without one is answered by DRF (OPTIONS) or refused with a 405.
        if perm is None:
            return [IsAdminUser()]
        return [IsAdminUser(), model_permission(perm)()]


SCHEDULE_WRITE_ERRORS = _errors(400, 401, 403, 404, 415, 429)


class ScheduleListApi(_ScheduleApi):
    method_permissions = {"GET": VIEW_SCHEDULES_PERMISSION, "POST": ADD_SCHEDULES_PERMISSION}

    @extend_schema(
        operation_id="schedules_list",
        tags=SCHEDULES,
        summary="Every schedule, or one job's, with its next runs and its last run",
        parameters=[s.ScheduleListQuerySerializer],
        responses={200: s.ScheduleListResponse, **_errors(400, 401, 403, 429)},
    )
    def get(self, request: Request) -> Response:
        query = s.ScheduleListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return _ok(s.ScheduleListResponse, schedule_overviews(**query.validated_data))

    @extend_schema(
        operation_id="schedules_create",
        tags=SCHEDULES,
        summary="Add a schedule: it runs from the next minute on",
        description="The schedule services check the job, the cron, the time zone, the job's "
        "params and that the name is free; each field at fault is named in `error.fields` "
        "and nothing is saved. The change is audited with who and why.",
        request=s.ScheduleInputSerializer,
        responses={201: s.ScheduleWriteResponse, **_errors(400, 401, 403, 415, 429)},
    )
    def post(self, request: Request) -> Response:
        body = s.ScheduleInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        reason = fields.pop("reason", "")
        schedule = schedule_create(by=request.user.get_username(), reason=reason, **fields)
        message = f"Schedule '{schedule.name}' created"
        return _ok(
            s.ScheduleWriteResponse,
            _schedule_detail(schedule),
            code=status.HTTP_201_CREATED,
            message=message,
        )


class ScheduleDetailApi(_ScheduleApi):
    method_permissions = {
        "GET": VIEW_SCHEDULES_PERMISSION,
        "PATCH": CHANGE_SCHEDULES_PERMISSION,
        "DELETE": DELETE_SCHEDULES_PERMISSION,
    }

    @extend_schema(
        operation_id="schedules_retrieve",
        tags=SCHEDULES,
        summary="One schedule, with its missed slots and its audit",
        parameters=[SCHEDULE_ID],
        responses={200: s.ScheduleDetailResponse, **_errors(401, 403, 404, 429)},
    )
    def get(self, request: Request, schedule_id: int) -> Response:
        return _ok(s.ScheduleDetailResponse, _schedule_detail(schedule_get(schedule_id)))

    @extend_schema(
        operation_id="schedules_update",
        tags=SCHEDULES,
        summary="Change some of a schedule's fields: obeyed from the next minute on",
        description="Checked as when it is added; the audit keeps the changed fields before "
        "and after. A request that changes nothing records nothing.",
        parameters=[SCHEDULE_ID],
        request=s.ScheduleInputSerializer,
        responses={200: s.ScheduleWriteResponse, **SCHEDULE_WRITE_ERRORS},
    )
    def patch(self, request: Request, schedule_id: int) -> Response:
        before = schedule_get(schedule_id)
        body = s.ScheduleInputSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        reason = changes.pop("reason", "")
        schedule = schedule_update(
            schedule=before, by=request.user.get_username(), reason=reason, **changes
        )
        verb = "updated" if schedule.updated_at != before.updated_at else "unchanged"
        message = f"Schedule '{schedule.name}' {verb}"
        return _ok(s.ScheduleWriteResponse, _schedule_detail(schedule), message=message)

    @extend_schema(
        operation_id="schedules_remove",
        tags=SCHEDULES,
        summary="Remove a schedule: no more runs of it",
        description="Its runs and its audit stay, naming it. Takes no body: the reason is "
        "the `reason` query parameter.",
        parameters=[SCHEDULE_ID, s.OptionalReasonQuerySerializer],
        responses={
            200: s.ScheduleRemoveResponse,
            **_errors(400, 401, 403, 404, 429),
        },
    )
    def delete(self, request: Request, schedule_id: int) -> Response:
        schedule = schedule_get(schedule_id)
        if request.data:
            # A reason sent in the body would be lost without a word.
            raise ValidationError(
                {"body": ["A removal takes no body; give the reason as ?reason=..."]}
            )
        query = s.OptionalReasonQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        schedule_remove(
            schedule=schedule,
            by=request.user.get_username(),
            reason=query.validated_data.get("reason", ""),
        )
        message = f"Schedule '{schedule.name}' removed"
        return _ok(s.ScheduleRemoveResponse, schedule, message=message)


class _ScheduleStateChangeApi(_ScheduleApi):
    method_permissions = {"POST": PAUSE_SCHEDULES_PERMISSION}
    service = None
    verb = ""

    def post(self, request: Request, schedule_id: int) -> Response:
        before = schedule_get(schedule_id)
        body = s.OptionalReasonInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        schedule = self.service(
            schedule=before,
            by=request.user.get_username(),
            reason=body.validated_data.get("reason", ""),
        )
        message = f"Schedule '{schedule.name}' {self.verb}"
        if schedule.updated_at == before.updated_at:
            message = f"Schedule '{schedule.name}' was already {self.verb}"
        return _ok(s.ScheduleWriteResponse, _schedule_detail(schedule), message=message)


def _schedule_state_change_schema(operation_id: str, summary: str):
    return extend_schema_view(
        post=extend_schema(
            operation_id=operation_id,
            tags=SCHEDULES,
            summary=summary,
            parameters=[SCHEDULE_ID],
            request=s.OptionalReasonInputSerializer,
            responses={200: s.ScheduleWriteResponse, **SCHEDULE_WRITE_ERRORS},
        )
    )


@_schedule_state_change_schema(
    "schedules_pause", "Pause one schedule: its slots are recorded as skipped"
)
class SchedulePauseApi(_ScheduleStateChangeApi):
    service = staticmethod(schedule_pause)
    verb = "paused"


@_schedule_state_change_schema("schedules_resume", "Resume a paused schedule")
class ScheduleResumeApi(_ScheduleStateChangeApi):
    service = staticmethod(schedule_resume)
    verb = "resumed"
