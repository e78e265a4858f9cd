"""The OpenAPI schema, the interactive docs without a CDN, and a schemathesis fuzz of the
running app with every check: no 5xx, no response outside the schema, every valid request
accepted and every invalid one refused."""

import re
import zoneinfo
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
from jobs.fleet import controlled_queues
from jobs.models import Schedule
from jobs.queues import queue_names
from jobs.registry import all_jobs
from jobs.schedules import NAME, schedule_create
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
        "jobs_history",
        "jobs_trigger_by_name",
        "runs_list",
        "runs_retrieve",
        "runs_retry",
        "runs_log",
        "workers_list",
        "queues_list",
        "queues_requeue_dead",
        "queues_pause",
        "queues_resume",
        "queues_concurrency",
        "queues_clear",
        "queues_dead_letters",
        "queues_dead_letters_requeue",
        "queues_dead_letters_delete",
        "rate_limits_list",
        "rate_limits_set",
        "runs_cancel",
        "audit_list",
        "fleet_retrieve",
        "fleet_drain",
        "fleet_drain_end",
        "schedules_list",
        "schedules_create",
        "schedules_retrieve",
        "schedules_update",
        "schedules_remove",
        "schedules_pause",
        "schedules_resume",
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
    for name in (
        "TriggerInputRequest",
        "ReasonInputRequest",
        "ScheduleInputRequest",
        "PatchedScheduleInputRequest",
        "OptionalReasonInputRequest",
        "ConcurrencyInputRequest",
        "ClearInputRequest",
        "DeadLetterActionInputRequest",
        "RateLimitInputRequest",
    ):
        assert components[name]["additionalProperties"] is False
    # a new schedule needs a name, a job and a cron; an edit needs none of them
    schedule = components["ScheduleInputRequest"]
    assert sorted(schedule["required"]) == ["cron", "job", "name"]
    assert "required" not in components["PatchedScheduleInputRequest"]
    fields = schedule["properties"]
    assert (fields["name"]["maxLength"], fields["name"]["pattern"]) == (100, NAME.pattern)
    assert (fields["cron"]["format"], fields["cron"]["maxLength"]) == ("cron", 100)
    assert fields["timezone"]["format"] == "iana-time-zone"
    notes, empty = fields["notes"]["oneOf"]
    assert (notes["maxLength"], empty["maxLength"]) == (2_000, 0)
    assert not re.search(notes["pattern"], "a\x00b")
    assert (fields["max_retries"]["minimum"], fields["max_retries"]["maximum"]) == (0, 20)
    assert fields["max_retries"]["nullable"] is True
    for params in (fields["params"], components["TriggerInputRequest"]["properties"]["params"]):
        assert params["type"] == "object"
    # the reason is bounded and must say something
    reason = components["ReasonInputRequest"]["properties"]["reason"]
    assert reason["maxLength"] == 500
    assert re.search(reason["pattern"], "database is back")
    assert not re.search(reason["pattern"], " \t")
    assert not re.search(reason["pattern"], "a\x00b")
    # job and queue names are the registered ones
    jobs = sorted(spec.name for spec in all_jobs())
    assert sorted(parameters[("/api/v1/runs/", "job")]["enum"]) == jobs
    # the run history takes one id filter per registered entity, and a log one attempt
    for entity in ("escrow", "wallet", "cycle", "match", "pool"):
        filter_ = parameters[("/api/v1/runs/", entity)]
        assert (filter_["minimum"], filter_["maximum"]) == (1, 2**63 - 1)
    attempt = parameters[("/api/v1/runs/{run_id}/log", "attempt")]
    assert (attempt["minimum"], attempt["maximum"]) == (1, 32_767)
    assert sorted(parameters[("/api/v1/jobs/{name}/trigger", "name")]["enum"]) == jobs
    assert sorted(components["JobEnum"]["enum"]) == jobs
    # a removal's reason is a query parameter, bounded as every reason is
    removal_reason = parameters[("/api/v1/schedules/{schedule_id}/", "reason")]
    assert removal_reason["maxLength"] == 500
    queue = parameters[("/api/v1/queues/{name}/requeue-dead", "name")]
    assert sorted(queue["enum"]) == queue_names()
    # a queue's controls take the queues operators control, its dead letters any lane
    controlled = parameters[("/api/v1/queues/{name}/pause", "name")]
    assert sorted(controlled["enum"]) == controlled_queues()
    lanes = parameters[("/api/v1/queues/{name}/dead-letters", "name")]
    assert sorted(lanes["enum"]) == queue_names()
    # limits are bounded as the control services bound them
    concurrency = components["ConcurrencyInputRequest"]["properties"]["concurrency"]
    assert (concurrency["minimum"], concurrency["maximum"]) == (1, 10_000)
    assert concurrency["nullable"] is True
    limit = parameters[("/api/v1/audit/", "limit")]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 500, 50)
    message_ids = components["DeadLetterActionInputRequest"]["properties"]["message_ids"]
    assert (message_ids["minItems"], message_ids["maxItems"]) == (1, 1_000)


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


def _crons():
    """Valid cron specs in the shapes operators write: numbers, ranges, steps, aliases."""

    def field(low: int, high: int):
        number = st.integers(low, high).map(str)
        start = st.integers(low, high - 1)
        ranged = start.flatmap(
            lambda first: st.integers(first + 1, high).map(lambda last: f"{first}-{last}")
        )
        stepped = st.integers(1, high - low).map(lambda step: f"*/{step}")
        return st.one_of(st.just("*"), number, ranged, stepped)

    fields = st.tuples(field(0, 59), field(0, 23), field(1, 28), field(1, 12), field(0, 7))
    aliases = st.sampled_from(["@hourly", "@daily", "@weekly", "@monthly", "@yearly"])
    return st.one_of(fields.map(" ".join), aliases)


@pytest.fixture
def formats_the_server_takes():
    formats = {
        "date-time": _times_the_server_takes(),
        "cron": _crons(),
        "iana-time-zone": st.sampled_from(sorted(zoneinfo.available_timezones())),
    }
    for name, strategy in formats.items():
        register_string_format(name, strategy)
    yield
    for name in formats:
        unregister_string_format(name)


def _about_a_schedule_that_exists(case) -> None:
    """Random ids are of no schedule, so a request would stop at its 404: an id the request
    has (any integer is a valid one; an invalid request's fault is then elsewhere) becomes
    that of a schedule that exists."""
    schedule_id = case.path_parameters.get("schedule_id")
    if isinstance(schedule_id, int) and not isinstance(schedule_id, bool):
        target = Schedule.objects.filter(name="fuzzed").first() or schedule_create(
            by="fuzz", name="fuzzed", job="cleanup", cron="0 3 * * *"
        )
        case.path_parameters["schedule_id"] = target.pk


def _as_the_server_can_take_it(case) -> None:
    """JSON Schema cannot tie a body to the job it is for, nor say a name is free, nor tie
    one field to another: a valid request sends no params (tests/api/test_trigger_api.py
    sends a job's own), names a schedule no other one has, confirms a clear with the queue's
    name and gives a rate limit's two numbers together."""
    if not isinstance(case.body, dict):
        return
    if "params" in case.body:
        case.body["params"] = {}
    if "confirm" in case.body:
        case.body["confirm"] = case.path_parameters["name"]
    if {"limit", "window_seconds"} <= set(case.body) and None in (
        case.body["limit"],
        case.body["window_seconds"],
    ):
        case.body["limit"] = case.body["window_seconds"] = None
    name = case.body.get("name")
    if isinstance(name, str):
        others = Schedule.objects.filter(name=name)
        others.exclude(pk=case.path_parameters.get("schedule_id")).delete()


def _operation_ids() -> list[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        operation["operationId"] for path in schema["paths"].values() for operation in path.values()
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("operation_id", _operation_ids())
def test_fuzzing_the_running_api_with_every_check_finds_nothing(
    operation_id, live_server, broker, formats_the_server_takes
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
            _about_a_schedule_that_exists(case)
            if case.meta.generation.mode.is_positive:
                _as_the_server_can_take_it(case)
            response = case.call(base_url=live_server.url, headers=headers)
            # then every check passes: no 5xx, nothing outside the schema, valid requests
            # accepted and invalid ones refused
            case.validate_response(response, checks=CHECKS.get_all())

        try:
            call()
        except hypothesis.errors.Unsatisfiable:
            assert mode == GenerationMode.NEGATIVE, "valid requests must be possible"
