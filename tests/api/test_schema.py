"""The OpenAPI schema, the interactive docs without a CDN, and a schemathesis fuzz of the
running app with every check: no 5xx, no response outside the schema, every valid request
accepted and every invalid one refused."""

import re
from datetime import UTC, datetime, timedelta

import hypothesis
import pytest
import schemathesis
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.specs.openapi.formats import register_string_format, unregister_string_format

from jobs.conf import conf
from jobs.queues import queue_names
from jobs.registry import all_jobs
from tests.api.helpers import token_header, user_with

load_all_checks()
EXAMPLES_PER_OPERATION_AND_MODE = 25
EXTERNAL_URL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.IGNORECASE)


@pytest.mark.django_db
def test_the_schema_is_openapi_3_and_describes_every_operation():
    response = APIClient().get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    operations = {
        operation["operationId"] for path in schema["paths"].values() for operation in path.values()
    }
    assert operations >= {
        "jobs_list",
        "jobs_retrieve",
        "jobs_trigger",
        "jobs_pause",
        "jobs_resume",
        "jobs_status",
        "runs_list",
        "runs_retrieve",
        "runs_retry",
        "queues_list",
        "queues_requeue_dead",
    }
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])


@pytest.mark.django_db
def test_the_schema_says_what_the_server_enforces():
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    components = schema["components"]["schemas"]
    parameters = {
        (path, parameter["name"]): parameter["schema"]
        for path, operations in schema["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
    }

    # request bodies take no property they do not declare
    for name in ("TriggerInputRequest", "ReasonInputRequest"):
        assert components[name]["additionalProperties"] is False
    # the reason is bounded and must say something
    reason = components["ReasonInputRequest"]["properties"]["reason"]
    assert reason["maxLength"] == 500
    assert re.search(reason["pattern"], "database is back")
    assert not re.search(reason["pattern"], " \t")
    assert not re.search(reason["pattern"], "a\x00b")
    # job and queue names are the registered ones
    jobs = sorted(spec.name for spec in all_jobs())
    assert sorted(parameters[("/api/v1/runs/", "job")]["enum"]) == jobs
    assert sorted(parameters[("/api/v1/jobs/{name}/trigger", "name")]["enum"]) == jobs
    queue = parameters[("/api/v1/queues/{name}/requeue-dead", "name")]
    assert sorted(queue["enum"]) == queue_names()


@pytest.mark.django_db
def test_the_interactive_docs_load_their_assets_from_the_project_not_a_cdn():
    response = APIClient().get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert not EXTERNAL_URL.search(page), EXTERNAL_URL.search(page)


def _times_the_server_takes():
    """JSON Schema cannot say "within AS_OF_WINDOW_DAYS of now" or "in the past unless a dry
    run" (the descriptions do), so valid requests draw their times from that window."""
    now = timezone.now().replace(tzinfo=None)
    offsets = [UTC, timezone.get_fixed_timezone(330), timezone.get_fixed_timezone(-600)]
    moments = st.datetimes(
        min_value=now - timedelta(days=conf.AS_OF_WINDOW_DAYS - 1),
        max_value=now - timedelta(days=1),
        timezones=st.sampled_from(offsets),
    )
    return moments.map(datetime.isoformat)


@pytest.fixture
def date_times_in_the_window():
    register_string_format("date-time", _times_the_server_takes())
    yield
    unregister_string_format("date-time")


def _operation_ids() -> list[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        operation["operationId"] for path in schema["paths"].values() for operation in path.values()
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("operation_id", _operation_ids())
def test_fuzzing_the_running_api_with_every_check_finds_nothing(
    operation_id, live_server, broker, date_times_in_the_window
):
    # given the running app, its published schema and a superuser's token
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    operation = schema.find_operation_by_id(operation_id)
    headers = {"Authorization": token_header(user_with(superuser=True))}

    # when the operation gets valid and invalid requests
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION_AND_MODE,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def call(case):
            response = case.call(base_url=live_server.url, headers=headers)
            # then every check passes: no 5xx, nothing outside the schema, valid requests
            # accepted and invalid ones refused
            case.validate_response(response, checks=CHECKS.get_all())

        try:
            call()
        except hypothesis.errors.Unsatisfiable:
            assert mode == GenerationMode.NEGATIVE, "valid requests must be possible"
