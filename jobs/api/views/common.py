"""What the views of every resource share: a model permission, the documented error answers,
the envelope of an answer, and the runs' schedules read at once."""

from __future__ import annotations

import functools

from django.db.models import prefetch_related_objects
from drf_spectacular.utils import OpenApiResponse
from rest_framework import status
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from jobs.api.serializers.common import ErrorResponse
from jobs.models import JobRun


@functools.cache
def model_permission(perm: str) -> type[BasePermission]:
    """A permission class that demands one model permission (superusers have them all)."""

    class HasModelPermission(BasePermission):
        message = f"This needs the {perm} permission."

        def has_permission(self, request, view) -> bool:
            return request.user.has_perm(perm)

    return HasModelPermission


def errors(*codes: int) -> dict[int, OpenApiResponse]:
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
        code: OpenApiResponse(response=ErrorResponse, description=descriptions[code])
        for code in codes
    }


def ok(serializer_class, data, *, code: int = status.HTTP_200_OK, **extra) -> Response:
    return Response(serializer_class({"success": True, "data": data, **extra}).data, status=code)


def with_schedules(runs: list[JobRun | None]) -> None:
    """Each run's schedule read in one query, as the run serializer names it."""
    prefetch_related_objects([run for run in runs if run is not None], "schedule")
