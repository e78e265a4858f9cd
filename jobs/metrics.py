"""Prometheus metrics of the web app, read from the database on each scrape.

The job engine exports its runs; domain apps add collectors of their own (business lag)
through the `STEWARD_METRICS_COLLECTORS` setting. Only the web app imports this module:
a worker must not import prometheus_client before Dramatiq's middleware sets it up for
multiprocess collection.
"""

from __future__ import annotations

import functools

from django.db.models import Count, Max, Q, Sum
from django.utils.module_loading import import_string
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from jobs.conf import conf
from jobs.models import JobRun, RunStatus
from jobs.registry import all_jobs

DURATION_BUCKETS_SECONDS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600)


class JobRunCollector:
    """Runs by job and status, run durations, and the last success of each job."""

    def collect(self):
        runs = CounterMetricFamily(
            "steward_job_runs", "Job runs recorded, by job and status.", labels=["job", "status"]
        )
        for row in JobRun.objects.values("job", "status").annotate(count=Count("pk")):
            runs.add_metric([row["job"], row["status"]], row["count"])
        yield runs

        durations = HistogramMetricFamily(
            "steward_job_run_duration_seconds",
            "Duration of finished job runs' bodies.",
            labels=["job"],
        )
        bucket_counts = {
            f"le_{index}": Count("pk", filter=Q(duration_ms__lte=bound * 1000))
            for index, bound in enumerate(DURATION_BUCKETS_SECONDS)
        }
        rows = (
            JobRun.objects.filter(duration_ms__isnull=False)
            .values("job")
            .annotate(total=Count("pk"), sum_ms=Sum("duration_ms"), **bucket_counts)
        )
        for row in rows:
            buckets = [
                (str(bound), row[f"le_{index}"])
                for index, bound in enumerate(DURATION_BUCKETS_SECONDS)
            ] + [("+Inf", row["total"])]
            durations.add_metric([row["job"]], buckets, (row["sum_ms"] or 0) / 1000)
        yield durations

        last_success = GaugeMetricFamily(
            "steward_job_last_success_timestamp_seconds",
            "When each job last finished successfully (Unix time).",
            labels=["job"],
        )
        finished = dict(
            JobRun.objects.filter(status=RunStatus.SUCCEEDED)
            .values("job")
            .annotate(last=Max("finished_at"))
            .values_list("job", "last")
        )
        for spec in all_jobs():
            if finished.get(spec.name):
                last_success.add_metric([spec.name], finished[spec.name].timestamp())
        yield last_success


@functools.cache
def metrics_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    for path in conf.METRICS_COLLECTORS:
        registry.register(import_string(path)())
    return registry
