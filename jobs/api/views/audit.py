"""The audit's view: the control actions, newest first, filtered."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.serializers.audit import AuditListResponse, AuditQuerySerializer
from jobs.api.views.common import errors, model_permission, ok
from jobs.audit import control_actions
from jobs.exceptions import VIEW_AUDIT_PERMISSION


class AuditListApi(APIView):
    permission_classes = [IsAdminUser, model_permission(VIEW_AUDIT_PERMISSION)]

    @extend_schema(
        operation_id="audit_list",
        tags=["audit"],
        summary="Control actions, newest first: who did what, when, why, before and after",
        description="Pauses and resumes of queues and jobs, cancels, clears, dead-letter "
        "requeues and deletes, concurrency and rate-limit changes, drains.",
        parameters=[AuditQuerySerializer],
        responses={200: AuditListResponse, **errors(400, 401, 403, 429)},
    )
    def get(self, request: Request) -> Response:
        query = AuditQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = dict(query.validated_data)
        limit = filters.pop("limit")
        entries = list(control_actions(**filters)[:limit])
        return ok(AuditListResponse, {"entries": entries, "count": len(entries)})
