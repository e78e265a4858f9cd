"""The OpenAPI schema, the interactive docs without a CDN, and a schemathesis fuzz of the
running app that must find no 5xx and no response outside the schema."""

import re

import hypothesis
import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given
from rest_framework.test import APIClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.helpers import token_header, user_with

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
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
def test_the_interactive_docs_load_their_assets_from_the_project_not_a_cdn():
    response = APIClient().get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert not EXTERNAL_URL.search(page), EXTERNAL_URL.search(page)


def _operation_ids() -> list[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        operation["operationId"] for path in schema["paths"].values() for operation in path.values()
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("operation_id", _operation_ids())
def test_fuzzing_the_running_api_finds_no_server_error_and_no_schema_violation(
    operation_id, live_server, broker
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
            # then no answer is a 5xx or strays from the schema
            case.validate_response(response, checks=CHECKS)

        try:
            call()
        except hypothesis.errors.Unsatisfiable:
            assert mode == GenerationMode.NEGATIVE, "valid requests must be possible"
