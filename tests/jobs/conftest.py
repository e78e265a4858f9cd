import uuid

import pytest

from jobs import actors, registry
from jobs.registry import JobSpec


@pytest.fixture
def register_test_job():
    """Register test-only jobs (unique names) and remove them from the registry afterwards."""
    registered: list[JobSpec] = []

    def register(body, **options) -> JobSpec:
        spec = registry.register(
            JobSpec(
                name=f"test_job_{uuid.uuid4().hex[:10]}",
                body=body,
                cron="0 0 * * *",
                description="A job that exists only in this test.",
                **options,
            )
        )
        registered.append(spec)
        return spec

    yield register
    for spec in registered:
        registry._REGISTRY.pop(spec.name, None)
        actors._actors.pop(spec.actor_name, None)
        actors._actors.pop(spec.name, None)
