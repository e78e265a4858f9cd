"""The API's one exception handler: Steward's errors become clear 4xx answers in one envelope.

Every error body is `{"success": false, "error": {"code", "message", "fields"}}`, where
`fields` maps an input field to its messages (empty when the error is not about a field).
Every `StewardError` (engine and domain) answers with its own status and code; anything
not mapped here is a bug: logged with its traceback as Django logs one, and a 500 in the
envelope.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.signals import got_request_exception
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.log import log_response
from django.views.defaults import page_not_found
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from jobs.api.parsers import BodyTooLarge
from jobs.exceptions import StewardError

logger = logging.getLogger("steward.api")


class StewardApiError(exceptions.APIException):
    def __init__(self, error: StewardError) -> None:
        self.status_code = error.status_code
        super().__init__(detail=str(error), code=error.code)


class BrokerUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "broker_unavailable"
    default_detail = "The message broker does not answer; try again shortly."


def _as_api_exception(exc: Exception) -> Exception:
    if isinstance(exc, StewardError):
        if exc.fields:
            return exceptions.ValidationError(exc.fields)
        return StewardApiError(exc)
    if isinstance(exc, ObjectDoesNotExist):
        return exceptions.NotFound(str(exc))
    if isinstance(exc, Http404):
        return exceptions.NotFound(str(exc) or None)
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return exceptions.ValidationError(exc.message_dict)
        return exceptions.ValidationError(exc.messages)
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        logger.warning("Broker unavailable during an API request: %s", exc)
        return BrokerUnavailable()
    if isinstance(exc, RequestDataTooBig):
        # Django's DATA_UPLOAD_MAX_MEMORY_SIZE, far above the API's own limit.
        return BodyTooLarge()
    return exc


def _messages(detail) -> list[str]:
    if isinstance(detail, dict):
        return [text for nested in detail.values() for text in _messages(nested)]
    if isinstance(detail, list):
        return [text for nested in detail for text in _messages(nested)]
    return [str(detail)]


def error_body(*, code: str, message: str, fields: dict | None = None) -> dict:
    return {"success": False, "error": {"code": code, "message": message, "fields": fields or {}}}


def api_exception_handler(exc: Exception, context: dict) -> Response:
    exc = _as_api_exception(exc)
    response = exception_handler(exc, context)
    if response is None:
        return _server_error(exc, context["request"]._request)
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = {field: _messages(errors) for field, errors in detail.items()}
        summary = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in fields.items())
        message = f"Invalid input. {summary}"
        response.data = error_body(code="invalid", message=message, fields=fields)
    else:
        response.data = error_body(code=exc.get_codes(), message=str(exc.detail))
    return response


def _server_error(exc: Exception, request: HttpRequest) -> Response:
    response = Response(
        error_body(code="server_error", message="Something went wrong on our side; it is logged."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
    # What Django does for an exception it answers: the traceback to the request log (and
    # ADMINS), the signal to its listeners (the test client re-raises it).
    log_response(
        "Internal Server Error: %s", request.path, response=response, request=request, exception=exc
    )
    got_request_exception.send(sender=None, request=request)
    return response


def page_not_found_json_for_api(request: HttpRequest, exception: Exception) -> HttpResponse:
    """URLs under /api/ that match nothing answer in the API's error envelope."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            error_body(code="not_found", message=f"No API endpoint at {request.path}."),
            status=404,
        )
    return page_not_found(request, exception)
