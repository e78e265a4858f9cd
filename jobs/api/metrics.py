"""The Prometheus scrape endpoint."""

import hmac

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from jobs.conf import conf
from jobs.metrics import metrics_registry


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = conf.METRICS_TOKEN
    if token:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            return HttpResponse(
                "metrics need the bearer token\n", status=401, content_type="text/plain"
            )
    return HttpResponse(generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST)
