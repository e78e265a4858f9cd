"""The no-op jobs of `bench.engine_overhead`'s part (c), registered when this module is imported.

Imported after Django is set up and before `jobs.tasks` declares every job's actors: by the
benchmark's worker (`dramatiq ... django_dramatiq.setup django_dramatiq.tasks
bench.engine_overhead_jobs jobs.tasks`) and by the benchmark itself. Importing it again, or in
a process that registered them already, registers nothing twice.

There are several jobs because one job's runs exclude each other (the job lock): a backlog
spread round-robin over JOBS of them keeps a worker's threads on different jobs.
"""

from __future__ import annotations

from jobs import registry
from jobs.registry import JobSpec

JOB_COUNT = 16
JOBS = [f"bench_noop_{index:02d}" for index in range(JOB_COUNT)]


def noop(context) -> dict:
    """Does nothing, and says so: a run's cost is all the engine's."""
    return {}


def register_all() -> list[JobSpec]:
    """Register every bench job not registered yet; returns all of them, as registered."""
    known = {spec.name for spec in registry.all_jobs()}
    for name in JOBS:
        if name not in known:
            registry.register(
                JobSpec(
                    name=name,
                    body=noop,
                    cron="0 0 * * *",
                    description="A no-op job of the engine-overhead benchmark.",
                )
            )
    return [registry.get_job(name) for name in JOBS]


register_all()
