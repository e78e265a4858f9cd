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
from jobs.exceptions import UnknownJob
from jobs.lanes import lane_queue
from jobs.models import JobRun, JobRunAttempt, RunStatus
from jobs.registry import all_jobs, get_job

DURATION_BUCKETS_SECONDS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600)
WAIT_BUCKETS_SECONDS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900)


def _histogram_buckets(row: dict, bounds: tuple) -> list[tuple[str, int]]:
    """A row's cumulative `le_<index>` counts as Prometheus buckets, +Inf its total."""
    return [(str(bound), row[f"le_{index}"]) for index, bound in enumerate(bounds)] + [
        ("+Inf", row["total"])
    ]


def _bucket_counts(field: str, bounds: tuple) -> dict[str, Count]:
    return {
        f"le_{index}": Count("pk", filter=Q(**{f"{field}__lte": bound * 1000}))
        for index, bound in enumerate(bounds)
    }


class JobRunCollector:
    """Runs by job and status, run durations, how long attempts waited for a worker, and the
    last success of each job."""

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
        rows = (
            JobRun.objects.filter(duration_ms__isnull=False)
            .values("job")
            .annotate(
                total=Count("pk"),
                sum_ms=Sum("duration_ms"),
                **_bucket_counts("duration_ms", DURATION_BUCKETS_SECONDS),
            )
        )
        for row in rows:
            buckets = _histogram_buckets(row, DURATION_BUCKETS_SECONDS)
            durations.add_metric([row["job"]], buckets, (row["sum_ms"] or 0) / 1000)
        yield durations

        yield self._waits()

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

    def _waits(self) -> HistogramMetricFamily:
        waits = HistogramMetricFamily(
            "steward_job_run_wait_seconds",
            "How long attempts' messages waited for a worker, by job and the queue (lane) "
            "they waited in.",
            labels=["job", "queue"],
        )
        rows = (
            JobRunAttempt.objects.filter(wait_ms__isnull=False)
            .values("run__job", "run__urgent")
            .annotate(
                total=Count("pk"),
                sum_ms=Sum("wait_ms"),
                **_bucket_counts("wait_ms", WAIT_BUCKETS_SECONDS),
            )
            .order_by("run__job", "run__urgent")
        )
        for row in rows:
            try:
                queue = get_job(row["run__job"]).queue
            except UnknownJob:
                continue  # a job no longer registered: its queue is not known
            waits.add_metric(
                [row["run__job"], lane_queue(queue, urgent=row["run__urgent"])],
                _histogram_buckets(row, WAIT_BUCKETS_SECONDS),
                (row["sum_ms"] or 0) / 1000,
            )
        return waits


@functools.cache
def metrics_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    for path in conf.METRICS_COLLECTORS:
        registry.register(import_string(path)())
    return registry
