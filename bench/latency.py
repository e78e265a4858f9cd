"""Benchmark: trigger latency, from asking for a run until an idle worker has it `running`.

    python -m bench.latency [--samples 200] [--job expire_matches] [--via service api]
                            [--processes 1] [--threads 8] [--gap-ms 100 200] [--check]

One worker (`manage.py rundramatiq --processes 1 --threads 8`, Dramatiq's default threads)
listens on the real Redis broker; it is idle between samples. Each sample asks for a run of
`--job` (cheap: nothing is due in the small dataset) in one of two ways:

  service  `jobs.services.job_run_request`, what `manage.py runjob --enqueue` calls;
  api      `POST /api/v1/jobs/{name}/trigger` with a staff token, through Django's full
           request handling (middleware, DRF authentication and permissions, serializers),
           in this process (no HTTP server in between);

and times from just before the call to the run's `started_at`, which the worker writes when it
moves the run to `running` (same clock: one machine). It also reports how long the call itself
took (record + commit + message to Redis) and the rest (Redis to the worker, the worker's
pre-run checks). The next sample starts only after the run finished and a random 100-200 ms
gap, so the worker is idle every time.

Targets: p50 <= 20 ms, p95 <= 100 ms. Writes bench/results/latency.json.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from bench import harness

NAME = "latency"
TARGET_P50_MS = 20.0
TARGET_P95_MS = 100.0
WARMUP = 5
BENCH_USER = "bench-operator"


def api_client():
    """A Django test client authenticated with a superuser's DRF token."""
    from django.contrib.auth import get_user_model
    from django.test import Client
    from rest_framework.authtoken.models import Token

    user, _ = get_user_model().objects.get_or_create(
        username=BENCH_USER, defaults={"is_staff": True, "is_superuser": True}
    )
    token, _ = Token.objects.get_or_create(user=user)
    return Client(HTTP_AUTHORIZATION=f"Token {token.key}")


def trigger(via: str, *, job: str, client) -> int:
    """Ask for one run; returns its id."""
    if via == "service":
        from jobs.services import job_run_request

        return job_run_request(job=job, trigger="cli", requested_by="bench", reason="latency").pk
    response = client.post(
        f"/api/v1/jobs/{job}/trigger",
        data={"reason": "latency"},
        content_type="application/json",
    )
    if response.status_code != 202:
        raise RuntimeError(f"trigger answered {response.status_code}: {response.content[:500]}")
    return response.json()["data"]["id"]


def sample(via: str, *, job: str, client, timeout: float) -> dict:
    from django.utils import timezone

    asked = timezone.now()
    run_id = trigger(via, job=job, client=client)
    returned = timezone.now()
    run = harness.run_wait_finished(run_id, timeout=timeout, interval=0.005)
    if run.started_at is None:
        raise RuntimeError(
            f"run #{run.pk} finished {run.status} without starting: {run.status_reason}"
        )
    first_attempt = run.attempts.order_by("number").values_list("started_at", flat=True).first()
    return {
        "run_id": run.pk,
        "status": run.status,
        "latency_ms": (run.started_at - asked).total_seconds() * 1000,
        "call_ms": (returned - asked).total_seconds() * 1000,
        "pickup_ms": (run.started_at - returned).total_seconds() * 1000,
        "attempt_started_lag_ms": (first_attempt - run.started_at).total_seconds() * 1000
        if first_attempt
        else None,
    }


def stats(values: list[float]) -> dict:
    return harness.distribution(values, (50, 95, 99, 100), digits=2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--samples", type=int, default=200, help="samples per way (200)")
    parser.add_argument("--job", default="expire_matches", help="job to trigger (expire_matches)")
    parser.add_argument(
        "--via",
        nargs="+",
        choices=["service", "api"],
        default=["service", "api"],
        help="how to ask for the run (both)",
    )
    parser.add_argument("--processes", type=int, default=1, help="worker processes (1)")
    parser.add_argument(
        "--threads",
        type=int,
        default=harness.DEFAULT_THREADS,
        help=f"threads per worker process (Dramatiq's default, {harness.DEFAULT_THREADS})",
    )
    parser.add_argument(
        "--gap-ms",
        type=float,
        nargs=2,
        default=[100.0, 200.0],
        metavar=("MIN", "MAX"),
        help="idle gap between samples, drawn uniformly (100 200)",
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the worker, e.g. DATABASE_CONN_MAX_AGE=60 (repeatable)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per sample, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    worker_env = dict(item.split("=", 1) for item in args.worker_env)

    database_url, redis_url = harness.bench_urls()
    harness.django_setup()
    from django.conf import settings

    from jobs.registry import get_job

    queue = get_job(args.job).queue
    database = f"{harness.database_name(database_url)}_latency"
    machine = harness.machine_info(database_url=database_url, redis_url=redis_url)
    print(f"Machine: {harness.describe_machine(machine)}")
    print(
        f"Trigger {args.job} (queue {queue}) {args.samples} times per way ({', '.join(args.via)}) "
        f"on an idle worker ({args.processes} process(es) x {args.threads} threads), "
        f"{args.gap_ms[0]:g}-{args.gap_ms[1]:g} ms apart; Redis {redis_url}"
        + (f"; worker env {worker_env}" if worker_env else ""),
        flush=True,
    )
    harness.database_create(database_url, database)
    harness.django_use_database(database, migrate=True)
    client = api_client()
    harness.redis_flush(redis_url)
    log = harness.log_path(NAME)
    worker = harness.worker_process(
        processes=args.processes,
        threads=args.threads,
        database_url=harness.url_with_database(database_url, database),
        redis_url=redis_url,
        log_path=log,
        env=worker_env,
    )
    rng = random.Random(7)
    results: dict[str, list[dict]] = {via: [] for via in args.via}
    load_before = harness.load_average()
    worker.start()
    try:
        for via in args.via:  # warm both paths up: imports, connections, caches
            for _ in range(WARMUP):
                sample(via, job=args.job, client=client, timeout=args.timeout)
                time.sleep(rng.uniform(*args.gap_ms) / 1000)
        # Interleave the ways, so a burst of load elsewhere on the machine hits both alike.
        for index in range(args.samples):
            for via in args.via:
                time.sleep(rng.uniform(*args.gap_ms) / 1000)
                results[via].append(sample(via, job=args.job, client=client, timeout=args.timeout))
            if (index + 1) % 50 == 0:
                print(f"  {index + 1} samples per way", flush=True)
    finally:
        worker.stop()
        harness.django_release_database()
        if not args.keep:
            harness.database_drop(database_url, database)
    load_after = harness.load_average()

    summary = {}
    rows = []
    for via, samples in results.items():
        latency = stats([s["latency_ms"] for s in samples])
        call = stats([s["call_ms"] for s in samples])
        pickup = stats([s["pickup_ms"] for s in samples])
        not_ok = sum(s["status"] != "succeeded" for s in samples)
        summary[via] = {
            "latency_ms": latency,
            "call_ms": call,
            "pickup_ms": pickup,
            "runs_not_succeeded": not_ok,
        }
        label = "runjob --enqueue (service)" if via == "service" else "POST .../trigger (API)"
        rows.append(
            [
                label,
                len(samples),
                *(round(latency[key], 1) for key in ("p50", "p95", "p99", "max")),
                round(call["p50"], 1),
                round(pickup["p50"], 1),
            ]
        )
    print()
    print(
        harness.table(
            [
                "trigger",
                "samples",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "call p50 ms",
                "to running p50 ms",
            ],
            rows,
        )
    )
    targets = {}
    for via, result in summary.items():
        p50, p95 = result["latency_ms"]["p50"], result["latency_ms"]["p95"]
        targets[via] = {
            "p50_ms": {"target": TARGET_P50_MS, "actual": p50, "met": p50 <= TARGET_P50_MS},
            "p95_ms": {"target": TARGET_P95_MS, "actual": p95, "met": p95 <= TARGET_P95_MS},
        }
        print(
            f"{via}: p50 {p50:.1f} ms (target <= {TARGET_P50_MS:g}) "
            f"{'met' if p50 <= TARGET_P50_MS else 'MISSED'}; p95 {p95:.1f} ms "
            f"(target <= {TARGET_P95_MS:g}) {'met' if p95 <= TARGET_P95_MS else 'MISSED'}"
        )
    correct = all(result["runs_not_succeeded"] == 0 for result in summary.values())
    print(
        f"every run succeeded: {'yes' if correct else 'NO'}; "
        f"load average before {load_before}, after {load_after}"
    )
    return harness.results_finish(
        NAME,
        {
            "command": harness.command_line(),
            "machine": machine,
            "parameters": {
                "samples": args.samples,
                "job": args.job,
                "queue": queue,
                "via": args.via,
                "processes": args.processes,
                "threads": args.threads,
                "gap_ms": args.gap_ms,
                "worker_env": worker_env,
                "warmup_samples": WARMUP,
                "broker": settings.DRAMATIQ_BROKER["BROKER"],
                "redis_url": redis_url,
                "timed": "just before the call -> JobRun.started_at written by the worker",
            },
            "load_average_before": load_before,
            "load_average_after": load_after,
            "summary": summary,
            "targets": targets,
            "samples": results,
            "correct": correct,
            "worker_log": harness.project_path(log),
        },
        correct=correct,
        check=args.check,
        targets_met=all(t["met"] for way in targets.values() for t in way.values()),
    )


if __name__ == "__main__":
    sys.exit(main())
