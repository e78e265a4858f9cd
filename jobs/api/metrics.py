"""The Prometheus scrape endpoint: run counts, last successes and overdue escrows with their
amounts, so it is closed with DEBUG off unless a bearer token or METRICS_PUBLIC opens it."""

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from jobs.conf import conf
from jobs.metrics import metrics_registry


def _refused(message: str) -> HttpResponse:
    response = HttpResponse(f"{message}\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = conf.METRICS_TOKEN
    if token:
        scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            supplied.strip().encode(), token.encode()
        ):
            return _refused("metrics need the bearer token: Authorization: Bearer <token>")
    elif not (settings.DEBUG or conf.METRICS_PUBLIC):
        return _refused("metrics are closed: set METRICS_TOKEN, or METRICS_PUBLIC=1")
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
