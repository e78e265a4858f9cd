"""The schedules' views: list, add, show, change, remove, pause and resume."""

from __future__ import annotations

import dataclasses

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.serializers.schedules import (
    OptionalReasonInputSerializer,
    OptionalReasonQuerySerializer,
    ScheduleDetailResponse,
    ScheduleInputSerializer,
    ScheduleListQuerySerializer,
    ScheduleListResponse,
    ScheduleRemoveResponse,
    ScheduleWriteResponse,
)
from jobs.api.views.common import errors, model_permission, ok
from jobs.exceptions import (
    ADD_SCHEDULES_PERMISSION,
    CHANGE_SCHEDULES_PERMISSION,
    DELETE_SCHEDULES_PERMISSION,
    PAUSE_SCHEDULES_PERMISSION,
    VIEW_SCHEDULES_PERMISSION,
)
from jobs.models import Schedule
from jobs.schedule_selectors import schedule_changes, schedule_missed_slots, schedule_overviews
from jobs.schedules import (
    ScheduleNotFound,
    schedule_create,
    schedule_get,
    schedule_pause,
    schedule_remove,
    schedule_resume,
    schedule_update,
)

SCHEDULE_ID = OpenApiParameter("schedule_id", OpenApiTypes.INT, OpenApiParameter.PATH)
SCHEDULES = ["schedules"]


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


SCHEDULE_WRITE_ERRORS = errors(400, 401, 403, 404, 415, 429)


class ScheduleListApi(_ScheduleApi):
    method_permissions = {"GET": VIEW_SCHEDULES_PERMISSION, "POST": ADD_SCHEDULES_PERMISSION}

    @extend_schema(
        operation_id="schedules_list",
        tags=SCHEDULES,
        summary="Every schedule, or one job's, with its next runs and its last run",
        parameters=[ScheduleListQuerySerializer],
        responses={200: ScheduleListResponse, **errors(400, 401, 403, 429)},
    )
    def get(self, request: Request) -> Response:
        query = ScheduleListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return ok(ScheduleListResponse, schedule_overviews(**query.validated_data))

    @extend_schema(
        operation_id="schedules_create",
        tags=SCHEDULES,
        summary="Add a schedule: it runs from the next minute on",
        description="The schedule services check the job, the cron, the time zone, the job's "
        "params and that the name is free; each field at fault is named in `error.fields` "
        "and nothing is saved. The change is audited with who and why.",
        request=ScheduleInputSerializer,
        responses={201: ScheduleWriteResponse, **errors(400, 401, 403, 415, 429)},
    )
    def post(self, request: Request) -> Response:
        body = ScheduleInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        fields = dict(body.validated_data)
        reason = fields.pop("reason", "")
        schedule = schedule_create(by=request.user.get_username(), reason=reason, **fields)
        message = f"Schedule '{schedule.name}' created"
        return ok(
            ScheduleWriteResponse,
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
        responses={200: ScheduleDetailResponse, **errors(401, 403, 404, 429)},
    )
    def get(self, request: Request, schedule_id: int) -> Response:
        return ok(ScheduleDetailResponse, _schedule_detail(schedule_get(schedule_id)))

    @extend_schema(
        operation_id="schedules_update",
        tags=SCHEDULES,
        summary="Change some of a schedule's fields: obeyed from the next minute on",
        description="Checked as when it is added; the audit keeps the changed fields before "
        "and after. A request that changes nothing records nothing.",
        parameters=[SCHEDULE_ID],
        request=ScheduleInputSerializer,
        responses={200: ScheduleWriteResponse, **SCHEDULE_WRITE_ERRORS},
    )
    def patch(self, request: Request, schedule_id: int) -> Response:
        before = schedule_get(schedule_id)
        body = ScheduleInputSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        reason = changes.pop("reason", "")
        schedule = schedule_update(
            schedule=before, by=request.user.get_username(), reason=reason, **changes
        )
        verb = "updated" if schedule.updated_at != before.updated_at else "unchanged"
        message = f"Schedule '{schedule.name}' {verb}"
        return ok(ScheduleWriteResponse, _schedule_detail(schedule), message=message)

    @extend_schema(
        operation_id="schedules_remove",
        tags=SCHEDULES,
        summary="Remove a schedule: no more runs of it",
        description="Its runs and its audit stay, naming it. Takes no body: the reason is "
        "the `reason` query parameter.",
        parameters=[SCHEDULE_ID, OptionalReasonQuerySerializer],
        responses={
            200: ScheduleRemoveResponse,
            **errors(400, 401, 403, 404, 429),
        },
    )
    def delete(self, request: Request, schedule_id: int) -> Response:
        schedule = schedule_get(schedule_id)
        if request.data:
            # A reason sent in the body would be lost without a word.
            raise ValidationError(
                {"body": ["A removal takes no body; give the reason as ?reason=..."]}
            )
        query = OptionalReasonQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        schedule_remove(
            schedule=schedule,
            by=request.user.get_username(),
            reason=query.validated_data.get("reason", ""),
        )
        message = f"Schedule '{schedule.name}' removed"
        return ok(ScheduleRemoveResponse, schedule, message=message)


class _ScheduleStateChangeApi(_ScheduleApi):
    method_permissions = {"POST": PAUSE_SCHEDULES_PERMISSION}
    service = None
    verb = ""

    def post(self, request: Request, schedule_id: int) -> Response:
        before = schedule_get(schedule_id)
        body = OptionalReasonInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        schedule = self.service(
            schedule=before,
            by=request.user.get_username(),
            reason=body.validated_data.get("reason", ""),
        )
        message = f"Schedule '{schedule.name}' {self.verb}"
        if schedule.updated_at == before.updated_at:
            message = f"Schedule '{schedule.name}' was already {self.verb}"
        return ok(ScheduleWriteResponse, _schedule_detail(schedule), message=message)


def _schedule_state_change_schema(operation_id: str, summary: str):
    return extend_schema_view(
        post=extend_schema(
            operation_id=operation_id,
            tags=SCHEDULES,
            summary=summary,
            parameters=[SCHEDULE_ID],
            request=OptionalReasonInputSerializer,
            responses={200: ScheduleWriteResponse, **SCHEDULE_WRITE_ERRORS},
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
