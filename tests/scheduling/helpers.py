from contextlib import contextmanager

from jobs import registry
from jobs.registry import JobSpec


@contextmanager
def registered_job(name: str, *, cron: str = "0 * * * *", body=None, **options):
    """Register a test-only job for the duration of the block."""
    spec = registry.register(
        JobSpec(
            name=name,
            body=body or (lambda context: {"ran": 1}),
            cron=cron,
            description="test job",
            **options,
        )
    )
    try:
        yield spec
    finally:
        registry._REGISTRY.pop(name, None)
